#!/bin/sh
# sync-import -d copies the unchanged lines of the previous snapshot
# into the new one in ranges (copy_file_range(2) into a file, write(2)
# into a pipe), found by a scan of the previous file that reads only
# each line's anchor and end, without parsing it; the changed lines go
# where a binary search of the file puts them.  Whatever the path, the output must be the bytes of a full
# import: here with changes in the first and the last line of the
# previous snapshot, a long line (a group of 300 members), ranges of
# hundreds of kilobytes, to a file, to standard output and to a pipe.
# A previous snapshot with two lines swapped, or a line removed, is
# refused as a parse of it refuses it, after a present phase or a
# session log.
. "$(dirname "$0")/lib.sh"

SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH

slapd_start
slapd_seed || fail "seed slapd"
slapd_overlay syncprov || fail "add syncprov"
OVL="olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config"
P=ou=People,$SLAPD_BASE

# 300 users of about a kilobyte each, and two groups of all of them
# (long lines; the first or the last line may be one, so there are two)
awk -v p="$P" -v b="$SLAPD_BASE" 'BEGIN {
	pad = "x"
	for (k = 0; k < 10; k++)
		pad = pad pad
	for (i = 1; i <= 300; i++)
		printf "dn: uid=bulk%03d,%s\nobjectClass: inetOrgPerson\nuid: bulk%03d\ncn: Bulk %d\nsn: Bulk\ndescription: %s\n\n", i, p, i, i, substr(pad, 1, 900)
	for (g = 1; g <= 2; g++) {
		printf "dn: cn=Bulk%d,ou=Groups,%s\nobjectClass: groupOfNames\ncn: Bulk%d\n", g, b, g
		for (i = 1; i <= 300; i++)
			printf "member: uid=bulk%03d,%s\n", i, p
		printf "\n"
	}
}' >"$T/bulk.ldif"
slapd_add "$T/bulk.ldif" || fail "add 300 users"

cat >"$T/sync.yaml" <<EOF
state_dir: $T/state
connectors:
  dir:
    type: ldap
    url: $SLAPD_URL
    bind_dn: $SLAPD_ROOTDN
    password_file: $SLAPD_PWFILE
    allow_cleartext_bind: true
    base_dn: $SLAPD_BASE
    objects:
      user:
        filter: (objectClass=inetOrgPerson)
      group: {}
EOF

# dns SNAP: the DNs of the objects of SNAP in file order, one a line
dns() {
	python3 - "$1" <<'EOF'
import json, sys
for l in open(sys.argv[1]).readlines()[1:]:
    print(json.loads(l)['dn'])
EOF
}

# same NAME DELTA-ARGS...: a delta import to a file, to standard output
# and to a pipe, and a full import, must give the same bytes
same() {
	_n=$1; shift
	test_expect_code 0 "$_n: a delta import to a file" \
		sync-import -c "$T/sync.yaml" "$@" -o "$T/$_n.snap" dir
	test_no_grep "... no fallback" 'a full import' "$T/err"
	cp "$T/err" "$T/$_n.err"
	test_expect_code 0 "... to standard output" \
		sync-import -q -c "$T/sync.yaml" "$@" dir
	cp "$T/out" "$T/$_n.stdout"
	test_expect_code 0 "... to a pipe" \
		sh -c 'sync-import -q -c "$1" "$2" "$3" dir | cat >"$4"' sh \
		"$T/sync.yaml" "$@" "$T/$_n.pipe"
	test_expect_code 0 "... and a full import" \
		sync-import -q -c "$T/sync.yaml" -o "$T/$_n.full" dir
	test_cmp "... the same bytes in a file" "$T/$_n.full" "$T/$_n.snap"
	test_cmp "... on standard output" "$T/$_n.full" "$T/$_n.stdout"
	test_cmp "... through a pipe" "$T/$_n.full" "$T/$_n.pipe"
}

test_expect_code 0 "a full import" \
	sync-import -q -c "$T/sync.yaml" -o "$T/a.snap" dir
dns "$T/a.snap" >"$T/a.dns"
test_expect_code 0 "... the 300 users and their two groups among them" \
	grep -c -e '^uid=bulk' -e '^cn=Bulk[12],' "$T/a.dns"
echo 302 >"$T/n.want"
test_cmp "... all there" "$T/n.want" "$T/out"

# Round 1, no session log (a present phase): the first line changed,
# the last deleted, one in the middle changed, two users added.
first=$(sed -n 1p "$T/a.dns")
last=$(sed -n '$p' "$T/a.dns")
mid=$(sed -n 150p "$T/a.dns")
printf '%s\n%s\n%s\n' "$first" "$mid" "$last" >"$T/r1.dns"
cat >"$T/ch1.ldif" <<EOF
dn: $first
changetype: modify
replace: description
description: the first line, changed

dn: $mid
changetype: modify
replace: description
description: a line in the middle, changed

dn: $last
changetype: delete

dn: uid=new1,$P
changetype: add
objectClass: inetOrgPerson
uid: new1
cn: New One
sn: One

dn: uid=new2,$P
changetype: add
objectClass: inetOrgPerson
uid: new2
cn: New Two
sn: Two
EOF
slapd_modify "$T/ch1.ldif" || fail "changes with ldapmodify"
# Two lines swapped: the scan sees it and leaves it to the parser,
# which says what is wrong (as it did before the scan).
python3 - "$T/a.snap" "$T/swap.snap" <<'EOF'
import sys
ls = open(sys.argv[1]).read().split('\n')
ls[5], ls[6] = ls[6], ls[5]
open(sys.argv[2], 'w').write('\n'.join(ls))
EOF
test_expect_code 2 "two lines out of order in the previous snapshot" \
	sync-import -q -c "$T/sync.yaml" -d "$T/swap.snap" -o "$T/x.snap" dir
test_grep "... is an error, with the line" \
	"swap.snap:7:.*out of order" "$T/err"

same d1 -d "$T/a.snap"
test_grep "... says what changed" '\(delta: 5 changed\)$' "$T/d1.err"

# Round 2, with a session log (deletes by entryUUID, lines looked up):
# the first line deleted, the last changed, a big group changed.
cat >"$T/slog.ldif" <<EOF
dn: $OVL
changetype: modify
replace: olcSpSessionlog
olcSpSessionlog: 1000
EOF
slapd_modify "$T/slog.ldif" || fail "set the session log"
dns "$T/d1.snap" >"$T/d1.dns"
first=$(sed -n 1p "$T/d1.dns")
last=$(sed -n '$p' "$T/d1.dns")
group=$(grep -v -e "^$first\$" -e "^$last\$" "$T/d1.dns" | grep -m 1 '^cn=Bulk')
cat >"$T/ch2.ldif" <<EOF
dn: $first
changetype: delete

dn: $last
changetype: modify
replace: description
description: the last line, changed

dn: $group
changetype: modify
delete: member
member: uid=bulk007,$P
EOF
slapd_modify "$T/ch2.ldif" || fail "more changes"
python3 - "$T/d1.snap" "$T/swap2.snap" "$T/cut2.snap" <<'EOF'
import sys
ls = open(sys.argv[1]).read().split('\n')
sw = list(ls)
sw[-3], sw[-2] = sw[-2], sw[-3]
open(sys.argv[2], 'w').write('\n'.join(sw))
del ls[100]
open(sys.argv[3], 'w').write('\n'.join(ls))
EOF
test_expect_code 2 "the last two lines swapped, with a session log" \
	sync-import -q -c "$T/sync.yaml" -d "$T/swap2.snap" -o "$T/x.snap" dir
test_grep "... is an error" "swap2.snap:.*out of order" "$T/err"
test_expect_code 2 "a line removed" \
	sync-import -q -c "$T/sync.yaml" -d "$T/cut2.snap" -o "$T/x.snap" dir
test_grep "... is an error" "cut2.snap:.*header counts" "$T/err"
same d2 -d "$T/d1.snap"
test_grep "... says what changed" '\(delta: 3 changed\)$' "$T/d2.err"
test_expect_code 1 "... the first line is gone" grep -F "\"dn\":\"$first\"" "$T/d2.snap"

# Round 3: nothing changed, the whole file is one range
same d3 -d "$T/d2.snap"
test_grep "... nothing changed" '\(delta: 0 changed\)$' "$T/d3.err"
test_cmp "... the previous bytes" "$T/d2.snap" "$T/d3.snap"

done_testing
