#!/bin/sh
# sync-import of a scope with no objects (an empty OU, or filters that
# match nothing): a snapshot of the header alone, and no report from the
# sanitizers (the sort of no records passed qsort_r a null array, which
# UBSan reports).  The test suite also runs on the sanitizer build.
. "$(dirname "$0")/lib.sh"

slapd_start
slapd_seed || fail "seed slapd"
printf 'dn: ou=Empty,%s\nobjectClass: organizationalUnit\nou: Empty\n' \
	"$SLAPD_BASE" >"$T/empty.ldif"
slapd_add "$T/empty.ldif" || fail "add an empty OU"

# conf NAME BASE FILTER: a connector reading BASE, FILTER for every type.
conf() {
	printf '%s\n' "state_dir: $T/state" "connectors:" "  dir:" \
	    "    type: ldap" "    url: $SLAPD_LDAPS_URL" "    ca_file: $SLAPD_CA" \
	    "    bind_dn: $SLAPD_ROOTDN" \
	    "    password_file: $SLAPD_PWFILE" "    base_dn: $2" "    objects:" \
	    "      user: {filter: '$3'}" "      group: {filter: '$3'}" \
	    "      contact: {filter: '$3'}" >"$T/$1.yaml"
}

# check NAME DESCRIPTION: the import of $T/NAME.yaml gives an empty snapshot.
check() {
	test_expect_code 0 "$2: imported" \
		sync-import -c "$T/$1.yaml" -o "$T/$1.snap" dir
	echo "sync-import: dir: 0 users, 0 groups, 0 contacts" >"$T/want"
	test_cmp "... no object of any type" "$T/want" "$T/err"
	test_no_grep "... no sanitizer report (qsort_r of nothing)" \
		'Sanitizer|runtime error' "$T/err"
	wc -l <"$T/$1.snap" >"$T/n"
	echo 1 >"$T/want"
	test_cmp "... a snapshot of one line" "$T/want" "$T/n"
	test_grep "... the header, with zero counts" \
		'^\{"connector":"dir","connector_type":"ldap","cookie":null,"counts":\{"contact":0,"group":0,"user":0\},"format":"sync-snapshot","kind":"full",' \
		"$T/$1.snap"
}

conf ou "ou=Empty,$SLAPD_BASE" '(objectClass=inetOrgPerson)'
check ou "an empty OU"
conf filter "$SLAPD_BASE" '(uid=nobody-has-this)'
check filter "filters that match nothing"

# And the empty snapshot diffs against an empty target: no changes.
printf '%s\n' "connectors:" \
    "  dir: {type: ldap, url: '$SLAPD_URL', base_dn: '$SLAPD_BASE'}" \
    "  dst: {type: ldap, url: '$SLAPD_URL', base_dn: '$SLAPD_BASE'}" \
    "flows:" \
    "  - {name: users, from: dir.user, to: dst.user, attributes: {cn: '[cn]'}}" \
    >"$T/diff.yaml"
sed 's/"connector":"dir"/"connector":"dst"/' "$T/ou.snap" >"$T/dst.snap"
test_expect_code 0 "an empty snapshot against an empty target: no changes" \
	sync-diff -c "$T/diff.yaml" -o "$T/plan.json" "$T/ou.snap" "$T/dst.snap"
test_no_grep "... and no sanitizer report" 'Sanitizer|runtime error' "$T/err"

done_testing
