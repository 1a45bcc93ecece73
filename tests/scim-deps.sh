#!/bin/sh
# scim-deps.sh: what the SCIM test server (tests/scim-server.js) needs.
# Node.js >= 16 and npm: when node or npm is missing, Debian's nodejs and
# npm packages (Debian 12 has node 18) through deps.sh; a node installed
# otherwise (NodeSource, nvm) is used as it is.  Then `npm ci` in
# tests/scim when its node_modules is missing or older than the lock file.
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	sh "$here/deps.sh" nodejs npm || exit 2
fi
v=$(node -e 'process.stdout.write(process.versions.node.split(".")[0])') || exit 2
if [ "$v" -lt 16 ]; then
	echo "node $v is too old for the SCIM test server (scimmy needs 16 or later)" >&2
	exit 2
fi
d=$here/scim
stamp=$d/node_modules/.package-lock.json
if [ ! -e "$stamp" ] || [ "$d/package-lock.json" -nt "$stamp" ]; then
	echo "npm ci in tests/scim" >&2
	(cd "$d" && npm ci --no-audit --no-fund --loglevel=error >&2) || exit 2
fi
exit 0
