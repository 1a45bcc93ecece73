#!/bin/sh
# The examples as shipped: make install puts sync-cycle beside the
# binaries and the examples under share/doc; the cron file's jobs run in
# the bare environment cron gives them (its own variables only) and find
# every tool; the CI workflow's make command works on a fresh checkout,
# installs the build packages by their real names, and posts a comment
# GitHub accepts however long the plan is; and ad-to-entra.yaml's plan
# is one Entra ID (the Graph emulator) takes whole.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/graph.sh"

EX=$TOP/examples

# --- make install and uninstall
test_expect_code 0 "make install into a staging directory" \
	make -s -C "$TOP" install DESTDIR="$T/stage" PREFIX=/opt/sync
S=$T/stage/opt/sync
for f in sync-import sync-diff sync-export sync-role sync-cycle; do
	ok "installs bin/$f, executable" test -x "$S/bin/$f"
done
for f in sync-role.1 sync-export.1; do
	ok "installs man1/$f" test -f "$S/share/man/man1/$f"
done
ok "installs man5/sync.conf.5" test -f "$S/share/man/man5/sync.conf.5"
ok "installs man7/sync.7" test -f "$S/share/man/man7/sync.7"
for f in ad-to-entra.yaml openldap-to-entra.yaml sync-cycle.cron \
    sync-cycle.service sync-cycle.timer sync-role-check.service \
    sync-role-check.timer ci-workflow.yml ci-dry-run.sh ci-truncate.sh; do
	ok "installs the example $f" test -f "$S/share/doc/sync/examples/$f"
done
test_grep "the installed service runs the installed sync-cycle" \
	'^ExecStart=/opt/sync/bin/sync-cycle ' "$S/share/doc/sync/examples/sync-cycle.service"
test_grep "the installed cron file's PATH starts with the installed bin" \
	'^PATH=/opt/sync/bin:' "$S/share/doc/sync/examples/sync-cycle.cron"

# --- the cron file's jobs in cron's environment: only the file's own
# variables (cron adds HOME, LOGNAME and SHELL, and PATH=/usr/bin:/bin
# unless the file sets one).  The installed file, with its paths moved
# under the staging directory and $T: PATH keeps the system directories
# and adds each one's staged copy in front of it.
CRON=$S/share/doc/sync/examples/sync-cycle.cron
mkdir -p "$T/etc/sync" "$T/var/lib/sync" && chmod 700 "$T/var/lib/sync"
printf 'x\n' >"$T/etc/sync/entra.secret" && chmod 600 "$T/etc/sync/entra.secret"
# An AD that does not answer: the cycle gets as far as the import.
cat >"$T/etc/sync/sync.yaml" <<EOF
state_dir: $T/var/lib/sync
connectors:
  ad:
    type: ad
    url: ldap://127.0.0.1:1
    base_dn: DC=example,DC=com
    timeout: 2
  entra:
    type: graph
    tenant: example.onmicrosoft.com
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret_file: $T/etc/sync/entra.secret
role:
  server: sync1
  lease:
    file: $T/var/lib/sync/lease
EOF
# cronenv: "NAME=VALUE" per variable of the cron file, moved to $T
awk '/^[A-Za-z_][A-Za-z0-9_]*=/' "$CRON" >"$T/cron.vars"
awk '!/^#/ && !/^[ \t]*$/ && !/^[A-Za-z_][A-Za-z0-9_]*=/ {
	$1 = $2 = $3 = $4 = $5 = $6 = ""; sub(/^ +/, ""); print }' "$CRON" >"$T/cron.jobs"
test_grep "the cron file sets PATH" '^PATH=' "$T/cron.vars"
test_grep "the cron file sets SHELL" '^SHELL=/bin/sh$' "$T/cron.vars"
cronsh=/bin/sh
set --
while IFS= read -r v; do
	case $v in
	PATH=*)
		p=
		for d in $(printf '%s\n' "${v#PATH=}" | tr ':' ' '); do
			p=$p${p:+:}$T/stage$d:$d
		done
		v=PATH=$p ;;
	SHELL=*) cronsh=${v#SHELL=} ;;
	esac
	set -- "$@" "$(printf '%s\n' "$v" | sed "s|/etc/sync/|$T/etc/sync/|")"
done <"$T/cron.vars"
grep -q '^PATH=' "$T/cron.vars" || set -- "$@" PATH=/usr/bin:/bin
set -- "$@" HOME="$T" LOGNAME=sync SHELL="$cronsh"
for tool in sync-cycle sync-import sync-diff sync-role sync-export; do
	env -i "$@" "$cronsh" -c "command -v $tool" >"$T/which" 2>&1
	echo "$S/bin/$tool" >"$T/want"
	test_cmp "in cron's environment, $tool is the installed one" "$T/want" "$T/which"
done
n=0
while IFS= read -r job; do
	n=$((n + 1))
	job=$(printf '%s\n' "$job" | sed "s|/var/lib/sync/|$T/var/lib/sync/|g")
	env -i "$@" "$cronsh" -c "$job" >"$T/job$n.out" 2>"$T/job$n.err" </dev/null
	echo $? >"$T/job$n.rc"
	case $job in
	*sync-cycle*)
		echo 2 >"$T/want"
		test_cmp "cron job '$job': runs, and fails at the import of the unreachable AD" \
			"$T/want" "$T/job$n.rc"
		test_grep "... with sync-import's own message" '^sync-import: ' "$T/job$n.err"
		test_grep "... and the cycle's" "^sync-cycle: import of 'ad' failed; no plan this cycle$" \
			"$T/job$n.err"
		test_no_grep "... every command found" 'not found' "$T/job$n.err" ;;
	*sync-role*)
		echo 1 >"$T/want"
		test_cmp "cron job '$job': runs, and says staging" "$T/want" "$T/job$n.rc"
		test_no_grep "... every command found" 'not found' "$T/job$n.err" ;;
	*)
		fail "cron job '$job' is one this test knows" ;;
	esac
done <"$T/cron.jobs"
echo 2 >"$T/want"
echo $n >"$T/got"
test_cmp "the cron file has the two jobs" "$T/want" "$T/got"

test_expect_code 0 "make uninstall" \
	make -s -C "$TOP" uninstall DESTDIR="$T/stage" PREFIX=/opt/sync
find "$T/stage" -type f >"$T/left"
: >"$T/want"
test_cmp "... removes every file make install put there" "$T/want" "$T/left"

# --- the CI workflow
W=$EX/ci-workflow.yml
# The make commands of the workflow, on a fresh checkout (no bin/, no
# build/): make -n must know how to make what they name.
mkdir -p "$T/src/tests"
cp -R "$TOP/Makefile" "$TOP/cmd" "$TOP/lib" "$T/src/" &&
	cp -R "$TOP/tests/fuzz" "$T/src/tests/"
sed -n 's/^ *\(make\b[^|;&]*\).*/\1/p' "$W" | sed 's/ *$//' >"$T/makes"
ok "the workflow runs make" test -s "$T/makes"
while IFS= read -r m; do
	# shellcheck disable=SC2086
	test_expect_code 0 "workflow: '$m' works on a fresh checkout" \
		sh -c "cd '$T/src' && ${m%% *} -n ${m#make}"
done <"$T/makes"
test_grep "the workflow runs sync-diff where make puts it" \
	'SYNC_DIFF=bin/sync-diff ' "$W"
test_expect_code 0 "make -n all on a fresh checkout" make -n -C "$T/src" all
test_grep "... builds bin/sync-diff" '^ln -sfn build/bin bin$' "$T/out"

# The packages: every library the build links (PKGS) and pkg-config
# itself come from a package the workflow installs, and no package it
# installs is a transitional one (libldap2-dev, pkg-config).
test_grep "the workflow installs the Makefile's build packages" \
	'apt-get install -y \$\(make -s print-build-debs\)' "$W"
make -s -C "$TOP" print-build-debs >"$T/bdebs" 2>"$T/bdebs.err"
ok "make print-build-debs lists them" test -s "$T/bdebs"
make -s -C "$TOP" print-debs >"$T/debs" 2>&1
for p in $(cat "$T/bdebs"); do
	if grep -qw -- "$p" "$T/debs"; then
		pass "build package $p is in DEBS"
	else
		fail "build package $p is in DEBS"
	fi
	apt-cache show "$p" >"$T/show" 2>&1
	test_grep "build package $p is a Debian package" "^Package: $p\$" "$T/show"
	test_no_grep "... not a transitional one" '^Description.*transitional' "$T/show"
done
pkgs=$(sed -n 's/^PKGS *= *//p' "$TOP/Makefile")
for m in $pkgs; do
	pc=$(pkg-config --variable=pcfiledir "$m")/$m.pc
	owner=$(dpkg-query -S "$pc" 2>/dev/null | sed 's/:.*//')
	if [ -n "$owner" ] && grep -qw -- "$owner" "$T/bdebs"; then
		pass "the build package list has $m ($owner)"
	else
		fail "the build package list has $m" "$pc is in '$owner'"
	fi
done
owner=$(dpkg-query -S "$(command -v pkg-config)" 2>/dev/null | sed 's/:.*//')
if grep -qw -- "$owner" "$T/bdebs"; then
	pass "the build package list has pkg-config ($owner)"
else
	fail "the build package list has pkg-config" "it is in '$owner'"
fi

# The comment: GitHub refuses one over 65,536 characters.  A dry run of
# 200,000 characters, its diff in a code block, is cut under 65,000 with
# a note saying so and where the whole of it is.
{
	echo "### sync-diff dry run"
	echo
	echo '```diff'
	i=0
	while [ $i -lt 3000 ]; do
		printf '+    description: "line %05d of a long plan, with some text to make it long"\n' $i
		i=$((i + 1))
	done
	echo '```'
} >"$T/long.md"
wc -c <"$T/long.md" | tr -d ' ' >"$T/size"
ok "the long dry run is over 200,000 characters" test "$(cat "$T/size")" -gt 200000
test_expect_code 0 "ci-truncate.sh cuts a long comment" \
	sh "$EX/ci-truncate.sh" 65000 "the whole dry run: artifact sync-dry-run" <"$T/long.md"
cp "$T/out" "$T/short.md"
n=$(wc -m <"$T/short.md" | tr -d ' ')
if [ "$n" -le 65000 ]; then
	pass "... to at most 65,000 characters ($n)"
else
	fail "... to at most 65,000 characters" "$n"
fi
b=$(wc -c <"$T/short.md" | tr -d ' ')
if [ "$b" -gt 60000 ]; then
	pass "... and not much less ($b bytes)"
else
	fail "... and not much less" "$b bytes"
fi
head -n 3 "$T/long.md" >"$T/want"
head -n 3 "$T/short.md" >"$T/got"
test_cmp "... keeping its start" "$T/want" "$T/got"
tail -n 3 "$T/short.md" >"$T/got"
cat >"$T/want" <<'EOF'
```

**Cut here**: this comment shows 61 KB of 202 KB; GitHub takes no more than 65,536 characters. the whole dry run: artifact sync-dry-run
EOF
sed 's/shows [0-9]* KB of [0-9]* KB/shows 61 KB of 202 KB/' "$T/got" >"$T/got2"
test_cmp "... closing the code block and saying it was cut, and where the rest is" \
	"$T/want" "$T/got2"
test_grep "... with the sizes" 'shows [0-9]+ KB of 2[0-9][0-9] KB' "$T/got"
awk -v n="$(wc -l <"$T/short.md")" 'NR > 3 && NR <= n - 3 &&
	!/^\+    description: "line [0-9][0-9][0-9][0-9][0-9] of a long plan, with some text to make it long"$/' \
	"$T/short.md" >"$T/stray"
: >"$T/want"
test_cmp "... and every line in between kept whole" "$T/want" "$T/stray"

printf '### short\n\nnothing to see\n' >"$T/short-in.md"
test_expect_code 0 "ci-truncate.sh: a short comment" \
	sh "$EX/ci-truncate.sh" 65000 "note" <"$T/short-in.md"
test_cmp "... passes unchanged" "$T/short-in.md" "$T/out"
test_expect_code 2 "ci-truncate.sh: a limit too small for the note" \
	sh "$EX/ci-truncate.sh" 10 "a note longer than ten" <"$T/long.md"
test_grep "... is an error" '^ci-truncate.sh: ' "$T/err"

test_grep "the workflow cuts the comment under 65,000" 'sh examples/ci-truncate\.sh 65000 ' "$W"
test_grep "... from the whole dry run into comment.md" '^ *< dry-run\.md > comment\.md$' "$W"
test_grep "... and posts that" '--body-file comment\.md$' "$W"
test_grep "... and uploads the whole dry run as an artifact" \
	'uses: actions/upload-artifact@' "$W"

# --- ad-to-entra.yaml as shipped, exported to Entra ID (the Graph
# emulator holding the recorded tenant): every change of its plan is
# one Graph accepts (no contact, no read-only property, no group Graph
# cannot create), phones included.  Only the connection (the emulator's
# URLs, the secret file), the state directory and the lease (a file
# instead of an LDAP entry) are changed.
EMU=$TOP/tests/graph-emulator.py TENANT=example.onmicrosoft.com
CID=6f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11
emu_app "$CID" "$T/entra.secret"
if emu_start graph; then
	BASE=http://127.0.0.1:$(cat "$T/graph.port")
	python3 - "$TOP/tests/data/diff/ex-entra.snap" >"$T/seed.json" <<'EOF'
import json, sys
lists = {"proxyAddresses", "businessPhones", "members"}
bools = {"accountEnabled", "mailEnabled", "securityEnabled"}
seed = {"users": [], "groups": []}
for line in open(sys.argv[1]).read().splitlines()[1:]:
    o = json.loads(line)
    g = {"id": o["id"]}
    for k, v in o["attrs"].items():
        g[k] = v if k in lists else (v[0] == "true" if k in bools else v[0])
    seed[o["type"] + "s"].append(g)
print(json.dumps(seed))
EOF
	ctl /_emulator/seed "$(cat "$T/seed.json")" >"$T/seeded" ||
		fail "the emulator takes the recorded tenant"
	python3 - "$EX/ad-to-entra.yaml" "$T" "$BASE" "$TENANT" >"$T/ad.yaml" <<'EOF'
import re, sys
src, t, base, tenant = sys.argv[1:5]
s = open(src).read()
def sub(old, new):
    global s
    n = len(re.findall(old, s, re.M))
    if n != 1:
        sys.exit("%s: %d matches for %r" % (src, n, old))
    s = re.sub(old, new, s, flags=re.M)
sub(r"client_secret_file: /etc/sync/entra.secret$",
    "client_secret_file: %s/entra.secret\n    token_url: %s/%s/oauth2/v2.0/token\n"
    "    graph_url: %s/v1.0\n    allow_http: true" % (t, base, tenant, base))
sub(r"^  lease:\n    ldap:\n(      .*\n)+", "  server: sync1\n  lease:\n    file: %s/lease\n" % t)
print("state_dir: %s/exstate" % t)
print(s, end="")
EOF
	mkdir -m 700 "$T/exstate"
	(
		cd "$TOP/tests/data/diff" || exit 2
		AD_URL=ldaps://127.0.0.1:1 AD_BASE=DC=example,DC=com ENTRA_TENANT=$TENANT \
		ENTRA_CLIENT_ID=$CID SYNC_APP_ID=0123456789abcdef0123456789abcdef
		export AD_URL AD_BASE ENTRA_TENANT ENTRA_CLIENT_ID SYNC_APP_ID
		test_expect_code 0 "ad-to-entra: promote" sync-role -c "$T/ad.yaml" promote
		test_expect_code 1 "ad-to-entra: the plan" \
			sync-diff -c "$T/ad.yaml" -o "$T/plan.json" ex-ad.snap ex-entra.snap
		# The config digest of sync(7)'s procedure: sha256sum of the
		# file, whatever the values of its ${NAME}s.
		sha256sum "$T/ad.yaml" | cut -d ' ' -f 1 >"$T/want"
		python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["config"])' \
			"$T/plan.json" >"$T/got"
		test_cmp "the plan's config digest is sha256sum of the file" "$T/want" "$T/got"
		env ENTRA_TENANT=other.example SYNC_APP_ID=ffffffffffffffffffffffffffffffff \
			sync-diff -c "$T/ad.yaml" -o "$T/plan2.json" ex-ad.snap ex-entra.snap 2>/dev/null
		python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["config"])' \
			"$T/plan2.json" >"$T/got"
		test_cmp "... the same with other values in the environment" "$T/want" "$T/got"
		test_expect_code 0 "ad-to-entra as shipped: the export applies the whole plan" \
			sync-export -c "$T/ad.yaml" "$T/plan.json"
		test_grep "... every change" \
			'^sync-export: 4 applied, 0 already in place, 0 failed, 0 not applied' "$T/err"
		# The next cycle: Entra ID read back (the groups' anchor in the
		# extension property included) leaves nothing to do.
		test_expect_code 0 "ad-to-entra: import Entra ID" \
			sync-import -c "$T/ad.yaml" -o "$T/entra2.snap" entra
		test_expect_code 0 "... and the next plan has nothing to do" \
			sync-diff -c "$T/ad.yaml" -f text ex-ad.snap "$T/entra2.snap"
		echo "$_lib_count $_lib_failed" >"$T/counts"
	)
	read -r _lib_count _lib_failed <"$T/counts"
	curl -sf "$BASE/_emulator/state" >"$T/state.json"
	python3 - "$T/state.json" >"$T/tenant" <<'EOF'
import json, sys
st = json.load(open(sys.argv[1]))
names = {o["id"]: o["displayName"] for o in st["users"] + st["groups"]}
for u in sorted(st["users"], key=lambda u: u["displayName"]):
    print(u["displayName"], u.get("businessPhones", []), u.get("mobilePhone"))
for g in sorted(st["groups"], key=lambda g: g["displayName"]):
    print(g["displayName"] + ":", ", ".join(sorted(names[m] for m in g["members"])),
          g.get("extension_0123456789abcdef0123456789abcdef_syncAnchor"))
EOF
	cat >"$T/want" <<'EOF'
Ann Smith ['+33 1 23 45 67 89'] +33 6 12 34 56 78
Global Admin [] None
John Doe [] None
All Company: Global Admin None
Engineering: Ann Smith, John Doe BwcHBwcHBwcHBwcHBwcHBw==
EOF
	test_cmp "... Entra ID has the phones, the group with its anchor and members, and no Gone Person" \
		"$T/want" "$T/tenant"
else
	fail "the emulator starts"
fi

# --- sync(7), "Trying it without a tenant": the commands of the page,
# run as written (from the top of the source, in $T/try instead of
# /tmp/try), print what the page shows.
awk '/^\.Ss Trying it without a tenant$/ { on = 1 } on && /^\.Bd -literal/ { lit = 1; next }
	lit && /^\.Ed$/ { exit } lit' "$TOP/man/sync.7" | sed 's/\\e/\\/g' >"$T/try.txt"
awk -v out="$T/try.want" '
	/^\$ / { sub(/^\$ /, ""); print; cont = /\\$/; if (/<<EOF$/) doc = 1; next }
	doc { print; if ($0 == "EOF") doc = 0; next }
	cont { print; cont = /\\$/; next }
	{ print > out }' "$T/try.txt" |
	sed "s|/tmp/try|$T/try|g; s|&\$|\& echo \$! >$T/try.pid|" >"$T/try.sh"
ok "the page has the commands" grep -q 'graph-emulator.py' "$T/try.sh"
(cd "$TOP" && sh -e "$T/try.sh" >"$T/try.out" 2>"$T/try.err" 3>&-)
echo $? >"$T/got"
echo 0 >"$T/want"
test_cmp "sync(7)'s emulator commands run" "$T/want" "$T/got" ||
	note_file "$T/try.err"
grep -v '^{' "$T/try.want" >"$T/want"
grep '^sync-import: ' "$T/try.err" >"$T/got"
test_cmp "... and print what the page says" "$T/want" "$T/got"
test_grep "... the snapshot has the seeded user" '"displayName":\["Cloud Admin"\]' "$T/try/entra.snap"
_i=0
while [ ! -s "$T/try/tenant.json" ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i + 1)); done
test_grep "... the emulator, stopped, kept its tenant" 'Cloud Admin' "$T/try/tenant.json"
[ -s "$T/try.pid" ] && kill "$(cat "$T/try.pid")" 2>/dev/null

# --- one procedure for one configuration on every server, the same
# text in sync(7) and sync-role(1).
for page in sync.7 sync-role.1; do
	awk '/^\.Ss One configuration for every server$/ { on = 1; print; next }
		on && /^\.S[sh] / { exit } on' "$TOP/man/$page" >"$T/proc.$page"
	ok "$page has the procedure" test -s "$T/proc.$page"
done
test_cmp "... the same in both" "$T/proc.sync.7" "$T/proc.sync-role.1"
test_grep "... checking the digest the plan carries" '^\.Dl head -n 1 plan\.json \| jq -r \.config$' \
	"$T/proc.sync.7"

# --- sync-role(1)'s cron example, run with stand-ins that log their
# calls: a staging server stops after the plan, not before; an error of
# sync-role check is an error; the active server exports.
awk '/^A cron job on every server/ { on = 1 } on && /^\.Bd -literal/ { lit = 1; next }
	lit && /^\.Ed$/ { exit } lit' "$TOP/man/sync-role.1" >"$T/cronex.sh"
ok "sync-role(1) has the cron example" test -s "$T/cronex.sh"
mkdir -p "$T/stub"
for tool in sync-import sync-diff sync-export; do
	printf '#!/bin/sh\necho %s "$@" >>"$T/calls"\n[ %s != sync-diff ] || exit 1\n' \
		"$tool" "$tool" >"$T/stub/$tool"
done
printf '#!/bin/sh\necho sync-role "$@" >>"$T/calls"\nexit "$ROLE_RC"\n' >"$T/stub/sync-role"
chmod 755 "$T/stub/"*
for rc in 1 2 0; do
	: >"$T/calls"
	(cd "$T" && ROLE_RC=$rc PATH=$T/stub:$PATH sh "$T/cronex.sh" >/dev/null 2>&1)
	echo "exit $?" >>"$T/calls"
	{
		echo "sync-import -o ad.snap ad"
		echo "sync-import -o entra.snap entra"
		echo "sync-diff -o plan.json ad.snap entra.snap"
		echo "sync-role check"
		case $rc in
		0) echo "sync-export plan.json"; echo "exit 0" ;;
		1) echo "exit 0" ;;
		2) echo "exit 2" ;;
		esac
	} >"$T/want"
	case $rc in
	0) what="the active server exports the plan" ;;
	1) what="a staging server stops after the plan" ;;
	2) what="an error of sync-role check is an error, no export" ;;
	esac
	test_cmp "cron example: $what" "$T/want" "$T/calls"
done

done_testing
