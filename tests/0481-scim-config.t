#!/bin/sh
# The scim connector's section of sync.conf: every error names
# file:line:column and exits 2 (sync.conf(5), CONNECTORS: SCIM).
. "$(dirname "$0")/lib.sh"

# bad NAME EXPECTED-MESSAGE: the config in $T/NAME.yaml (from stdin) must
# be refused with exactly that message (file name relative to $T).
bad() {
	cat >"$T/$1.yaml"
	(cd "$T" && sync-import -c "$1.yaml" app) >"$T/out" 2>"$T/err"
	_rc=$?
	printf '%s\n' "$2" >"$T/want"
	if [ $_rc -eq 2 ] && cmp -s "$T/want" "$T/err"; then
		pass "$1: refused with its position"
	else
		fail "$1: exit $_rc" "$(cat "$T/err")"
		note "expected: $2"
	fi
}

bad no-url "sync-import: no-url.yaml:3:5: missing required key 'url'" <<'EOF'
connectors:
  app:
    type: scim
    token_file: token
EOF

bad no-token "sync-import: no-token.yaml:3:5: missing required key 'token_file'" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/scim/v2
EOF

bad http "sync-import: http.yaml:4:10: connector 'app': plain http:// is refused unless 'allow_http: true' is set" <<'EOF'
connectors:
  app:
    type: scim
    url: http://scim.example.com/scim/v2
    token_file: token
EOF

bad not-a-url "sync-import: not-a-url.yaml:4:10: connector 'app': url must be an https:// URL" <<'EOF'
connectors:
  app:
    type: scim
    url: scim.example.com
    token_file: token
EOF

bad no-host "sync-import: no-host.yaml:4:10: connector 'app': url has no host" <<'EOF'
connectors:
  app:
    type: scim
    url: https:///scim
    token_file: token
EOF

bad query "sync-import: query.yaml:4:10: connector 'app': url must have no query, fragment or spaces" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2?x=1
    token_file: token
EOF

bad contact "sync-import: contact.yaml:7:7: connector 'app': SCIM has no contacts (objects: user and group)" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    objects:
      contact:
EOF

bad endpoint "sync-import: endpoint.yaml:8:19: connector 'app': invalid endpoint '/Users/../x' (a path such as /Users)" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    objects:
      user:
        endpoint: /Users/../x
EOF

bad obj-key "sync-import: obj-key.yaml:8:9: unknown key 'atributes'" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    objects:
      user:
        atributes: [ userName ]
EOF

bad anchor-id "sync-import: anchor-id.yaml:6:13: connector 'app': anchor must be an attribute the client writes, such as externalId" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    anchor: id
EOF

bad page-size "sync-import: page-size.yaml:6:16: 'page_size' must be between 1 and 10000, not 0" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    page_size: 0
EOF

bad verify "sync-import: verify.yaml:6:17: 'tls_verify' must be true or false, not 'no way'" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    tls_verify: no way
EOF

bad unknown "sync-import: unknown.yaml:6:5: unknown key 'bearer_token'" <<'EOF'
connectors:
  app:
    type: scim
    url: https://scim.example.com/v2
    token_file: token
    bearer_token: abc
EOF

done_testing
