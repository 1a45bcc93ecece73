#!/bin/sh
# sync.conf: every error names file:line:column and exits 2; ${NAME}
# substitution; aliases, anchors and tags refused; the fuzz target runs.
. "$(dirname "$0")/lib.sh"

# bad NAME EXPECTED-MESSAGE: the config in $T/NAME.yaml (from stdin) must
# be refused with exactly that message (file name relative to $T).
bad() {
	cat >"$T/$1.yaml"
	(cd "$T" && sync-import -c "$1.yaml" dir) >"$T/out" 2>"$T/err"
	_rc=$?
	printf '%s\n' "$2" >"$T/want"
	if [ $_rc -eq 2 ] && cmp -s "$T/want" "$T/err"; then
		pass "$1: refused with its position"
	else
		fail "$1: exit $_rc" "$(cat "$T/err")"
		note "expected: $2"
	fi
}

bad unknown-key "sync-import: unknown-key.yaml:5:5: unknown key 'urll'" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldap://localhost
    urll: ldap://localhost
    base_dn: dc=example,dc=org
EOF

bad unknown-top "sync-import: unknown-top.yaml:1:1: unknown key 'conectors'" <<'EOF'
conectors: {}
connectors:
  dir: {type: ldap, url: ldapi:///, base_dn: dc=x}
EOF

bad wrong-type "sync-import: wrong-type.yaml:5:16: 'page_size' must be an integer, not 'many'" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldap://localhost
    page_size: many
    base_dn: dc=example,dc=org
EOF

bad out-of-range "sync-import: out-of-range.yaml:4:14: 'timeout' must be between 1 and 86400, not 0" <<'EOF'
connectors:
  dir:
    type: ldap
    timeout: 0
    url: ldap://localhost
    base_dn: dc=example,dc=org
EOF

bad not-bool "sync-import: not-bool.yaml:5:15: 'starttls' must be true or false, not 'sometimes'" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldap://localhost
    starttls: sometimes
    base_dn: dc=example,dc=org
EOF

bad missing-url "sync-import: missing-url.yaml:3:5: missing required key 'url'" <<'EOF'
connectors:
  dir:
    type: ldap
    base_dn: dc=example,dc=org
EOF

bad bad-type "sync-import: bad-type.yaml:3:11: unknown connector type 'sql' (expected ldap, ad, graph or scim)" <<'EOF'
connectors:
  dir:
    type: sql
EOF

bad bad-scheme "sync-import: bad-scheme.yaml:4:10: connector 'dir': url must start with ldap://, ldaps:// or ldapi://" <<'EOF'
connectors:
  dir:
    type: ad
    url: http://dc1
    base_dn: dc=example,dc=org
EOF

bad bad-scheme-list "sync-import: bad-scheme-list.yaml:4:10: connector 'dir': each url of the list must start with ldap://, ldaps:// or ldapi://, not 'http://dc2'" <<'EOF'
connectors:
  dir:
    type: ad
    url: ldaps://dc1 http://dc2
    base_dn: dc=example,dc=org
EOF

bad empty-url "sync-import: empty-url.yaml:4:10: connector 'dir': url must start with ldap://, ldaps:// or ldapi://" <<'EOF'
connectors:
  dir:
    type: ad
    url: ' , '
    base_dn: dc=example,dc=org
EOF

bad starttls-list "sync-import: starttls-list.yaml:5:15: connector 'dir': starttls needs ldap:// urls, not 'ldaps://dc2'" <<'EOF'
connectors:
  dir:
    type: ad
    url: ldap://dc1 ldaps://dc2
    starttls: true
    base_dn: dc=example,dc=org
EOF

bad list-of-maps "sync-import: list-of-maps.yaml:5:16: 'base_dn' must be a list of strings, not of a mapping" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldap://x
    base_dn: [ {a: b} ]
EOF

bad syntax "sync-import: syntax.yaml:4:9: did not find expected ',' or ']' while parsing a flow sequence" <<'EOF'
connectors:
  dir:
    exclude: [a, b
    type: ldap
EOF

bad duplicate "sync-import: duplicate.yaml:4:5: duplicate key 'type' (first at line 3)" <<'EOF'
connectors:
  dir:
    type: ldap
    type: ad
EOF

bad alias "sync-import: alias.yaml:6:14: aliases (*base) are not allowed in a config file" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldap://x
    base_dn: dc=example,dc=org
    exclude: *base
EOF

bad anchor "sync-import: anchor.yaml:5:14: anchors (&base) are not allowed in a config file" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldap://x
    base_dn: &base dc=example,dc=org
EOF

bad tag "sync-import: tag.yaml:4:10: tags (tag:yaml.org,2002:binary) are not allowed in a config file" <<'EOF'
connectors:
  dir:
    type: ldap
    url: !!binary aGVsbG8=
EOF

# A billion laughs: refused at the first anchor, before anything grows.
{
	echo 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
	i=b; p=a
	for n in c d e f g h i j; do
		echo "$i: &$i [*$p,*$p,*$p,*$p,*$p,*$p,*$p,*$p,*$p]"
		p=$i; i=$n
	done
} >"$T/laughs.in"
bad laughs "sync-import: laughs.yaml:1:4: anchors (&a) are not allowed in a config file" <"$T/laughs.in"

unset SYNC_TEST_UNSET
bad unset-var "sync-import: unset-var.yaml:4:10: environment variable 'SYNC_TEST_UNSET' is not set" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ${SYNC_TEST_UNSET}
    base_dn: dc=example,dc=org
EOF

bad bad-var "sync-import: bad-var.yaml:4:10: invalid variable name 'A-B'" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ${A-B}
EOF

bad two-docs "sync-import: two-docs.yaml:2:1: only one YAML document is allowed" <<'EOF'
connectors: {}
---
connectors: {}
EOF

bad not-a-map "sync-import: not-a-map.yaml:1:1: the file must hold a mapping, not a list" <<'EOF'
- connectors
EOF

printf 'connectors:\n  dir:\n    type: ldap\n    url: ldap://\377\n' >"$T/utf8.in"
bad not-utf8 "sync-import: not-utf8.yaml:4:17: invalid leading UTF-8 octet" <"$T/utf8.in"

bad sasl-and-bind "sync-import: sasl-and-bind.yaml:5:16: connector 'dir': sasl_mech excludes bind_dn and password_file" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldapi:///
    sasl_mech: EXTERNAL
    bind_dn: cn=admin
    password_file: /nonexistent
    base_dn: dc=x
EOF

bad no-contact-filter "sync-import: no-contact-filter.yaml:6:24: connector 'dir': 'contact' needs a 'filter' (there is no default for type ldap)" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldapi:///
    base_dn: dc=x
    objects: {contact: {}}
EOF

bad no-connectors "sync-import: no-connectors.yaml:1:1: 'connectors' must not be empty" <<'EOF'
connectors: {}
EOF

bad no-base "sync-import: no-base.yaml:3:5: connector 'dir': missing required key 'base_dn'" <<'EOF'
connectors:
  dir:
    type: ldap
    url: ldapi:///
    objects: {user: {base_dn: ou=People}, group: {}}
EOF

bad key-no-cert "sync-import: key-no-cert.yaml:7:15: connector 'g': 'key_file' needs 'certificate_file'" <<'EOF'
connectors:
  g:
    type: graph
    tenant: t
    client_id: c
    client_secret_file: s
    key_file: k.pem
EOF

test_expect_code 2 "a config file that does not exist" \
	sync-import -c "$T/nonexistent.yaml" dir
echo "sync-import: cannot open '$T/nonexistent.yaml': No such file or directory" >"$T/want"
test_cmp "... is named with the system's reason" "$T/want" "$T/err"

# ${NAME} is replaced; $$ is a dollar sign.  The connector name in the
# error shows that the whole config was read.
cat >"$T/env.yaml" <<'EOF'
state_dir: ${SYNC_TEST_DIR}/state
connectors:
  dir:
    type: ldap
    url: ldap://127.0.0.1:1
    bind_dn: cn=a$$b,${SYNC_TEST_BASE}
    password_file: ${SYNC_TEST_DIR}/pw
    base_dn: ${SYNC_TEST_BASE}
EOF
printf x >"$T/pw"
chmod 600 "$T/pw"
SYNC_TEST_DIR=$T SYNC_TEST_BASE=dc=example,dc=org
export SYNC_TEST_DIR SYNC_TEST_BASE
test_expect_code 2 "\${NAME} substitution reaches every value" \
	sync-import -c "$T/env.yaml" dir
echo "sync-import: dir: refusing a simple bind over clear text to 'ldap://127.0.0.1:1'; use ldaps://, starttls: true, or set allow_cleartext_bind: true" >"$T/want"
test_cmp "... (the clear-text refusal comes after the config was read)" "$T/want" "$T/err"
ok "... and the state directory came from the environment" test -d "$T/state"

# Secret files: a FIFO is refused at once, not waited on for a writer
# (timeout turns a hang into a failure); a NUL byte, which would cut the
# secret short, is refused.  The clear-text bind is allowed so that the
# secret is read before any connection.
cat >"$T/secret.yaml" <<'EOF'
state_dir: ${SYNC_TEST_DIR}/state
connectors:
  dir:
    type: ldap
    url: ldap://127.0.0.1:1
    allow_cleartext_bind: true
    bind_dn: cn=admin,dc=example,dc=org
    password_file: ${SYNC_TEST_DIR}/pw.secret
    base_dn: dc=example,dc=org
EOF
mkfifo -m 600 "$T/pw.secret"
test_expect_code 2 "a FIFO as password_file: exit 2, without waiting" \
	timeout 10 sync-import -c "$T/secret.yaml" dir
echo "sync-import: dir: secret file '$T/pw.secret' is not a regular file" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"
rm "$T/pw.secret"
printf 'abc\000def\n' >"$T/pw.secret"
chmod 600 "$T/pw.secret"
test_expect_code 2 "a password_file with a NUL byte: exit 2" \
	timeout 10 sync-import -c "$T/secret.yaml" dir
echo "sync-import: dir: secret file '$T/pw.secret' contains a NUL byte" >"$T/want"
test_cmp "... says so" "$T/want" "$T/err"
# A url may be a list that libldap fails over; every URL of it counts.
# list NAME URL [LINE]: a config with a simple bind to URL (and LINE)
list() {
	cat >"$T/$1.yaml" <<EOF
connectors:
  dir:
    type: ldap
    url: $2
    bind_dn: cn=a,dc=example,dc=org
    password_file: $T/pw
    base_dn: dc=example,dc=org
    ${3:-timeout: 5}
EOF
}
list clear-second 'ldaps://127.0.0.1:1 ldap://127.0.0.1:2'
test_expect_code 2 "a list with an ldap:// URL after an ldaps:// one" \
	sync-import -c "$T/clear-second.yaml" dir
echo "sync-import: dir: refusing a simple bind over clear text to 'ldap://127.0.0.1:2'; use ldaps://, starttls: true, or set allow_cleartext_bind: true" >"$T/want"
test_cmp "... refuses the simple bind, naming that URL" "$T/want" "$T/err"
list clear-first 'ldap://127.0.0.1:1,ldaps://127.0.0.1:2'
test_expect_code 2 "a comma-separated list with an ldap:// URL first" \
	sync-import -c "$T/clear-first.yaml" dir
echo "sync-import: dir: refusing a simple bind over clear text to 'ldap://127.0.0.1:1'; use ldaps://, starttls: true, or set allow_cleartext_bind: true" >"$T/want"
test_cmp "... refuses the simple bind, naming that URL" "$T/want" "$T/err"
list all-tls 'ldaps://127.0.0.1:1, ldaps://127.0.0.1:2 ldapi://%2Fnonexistent'
test_expect_code 2 "a list of ldaps:// and ldapi:// URLs (nothing listens)" \
	sync-import -c "$T/all-tls.yaml" dir
echo "sync-import: dir: bind as 'cn=a,dc=example,dc=org' to 'ldaps://127.0.0.1:1, ldaps://127.0.0.1:2 ldapi://%2Fnonexistent' failed: Can't contact LDAP server (-1)" >"$T/want"
test_cmp "... is accepted: the bind is tried" "$T/want" "$T/err"
list starttls-all 'ldap://127.0.0.1:1 ldap://127.0.0.1:2' 'starttls: true'
test_expect_code 2 "a list of ldap:// URLs with StartTLS (nothing listens)" \
	sync-import -c "$T/starttls-all.yaml" dir
test_grep "... is accepted: StartTLS is tried" \
	"^sync-import: dir: StartTLS with 'ldap://127.0.0.1:1 ldap://127.0.0.1:2' failed: Can't contact LDAP server" "$T/err"
list allowed 'ldaps://127.0.0.1:1 ldap://127.0.0.1:2' 'allow_cleartext_bind: true'
test_expect_code 2 "a list with an ldap:// URL and allow_cleartext_bind (nothing listens)" \
	sync-import -c "$T/allowed.yaml" dir
test_grep "... is accepted: the bind is tried" \
	"^sync-import: dir: bind as 'cn=a,dc=example,dc=org' to 'ldaps://127.0.0.1:1 ldap://127.0.0.1:2' failed: Can't contact LDAP server" "$T/err"

test_expect_code 2 "usage on a bad option" sync-import -Z
test_grep "... prints the usage line" '^usage: sync-import ' "$T/err"
test_expect_code 2 "usage without a connector" sync-import

# The fuzz target must take any bytes; run it over every config above.
ok "the config fuzz target survives every test input" \
	"$BIN/../fuzz/config" "$T"/*.yaml "$T/utf8.in"

done_testing
