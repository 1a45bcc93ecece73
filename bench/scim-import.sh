#!/bin/sh
# bench/scim-import.sh [N]: sync-import of N users (default 2000, or
# BENCH_SCIM_N) and N/100 groups of 100 members from the SCIM test server
# (tests/scim-server.js, scimmy), pages of 100, against curl fetching the
# same pages one after the other to /dev/null: what the client adds to
# what the service costs.  Wall time (best of 3) and the peak RSS of
# sync-import (GNU time).  See bench/README.md.
. "$(dirname "$0")/../tests/lib.sh"
. "$TOP/tests/scim.sh"
lib_quiet
N=${1:-${BENCH_SCIM_N:-2000}}
command -v node >/dev/null || { echo "bench: node is missing" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench: GNU time is missing" >&2; exit 2; }
scim_start bench || { echo "bench: the SCIM server did not start" >&2; exit 2; }

# Seeded through the control API, 1000 at a time.
node -e '
const n = +process.argv[1], base = process.argv[2];
(async () => {
	const ids = [];
	for (let i = 0; i < n; i += 1000) {
		const users = [];
		for (let j = i; j < Math.min(n, i + 1000); j++)
			users.push({userName: `user${j}@example.com`, externalId: `x${j}`,
			    displayName: `User ${j}`, active: true,
			    name: {givenName: `Given${j}`, familyName: `Family${j}`},
			    emails: [{type: "work", value: `user${j}@example.com`, primary: true}]});
		const r = await fetch(base + "/_scim/seed", {method: "POST",
		    headers: {"Content-Type": "application/json"},
		    body: JSON.stringify({users})});
		ids.push(...(await r.json()).ids.users);
	}
	const groups = [];
	for (let g = 0; g * 100 < n; g++)
		groups.push({displayName: `Group ${g}`, externalId: `g${g}`,
		    members: ids.slice(g * 100, g * 100 + 100).map(v => ({value: v}))});
	await fetch(base + "/_scim/seed", {method: "POST",
	    headers: {"Content-Type": "application/json"},
	    body: JSON.stringify({groups})});
})();' "$N" "$SCIM_BASE" || exit 2
scim_conf "$T/bench.yaml" "page_size: 100"

curl_pages() {
	for ep in Users Groups; do
		i=1
		total=1
		while [ "$i" -le "$total" ]; do
			curl -s -H "Authorization: Bearer $SCIM_TOKEN" \
				"$SCIM_BASE/$ep?startIndex=$i&count=100" >"$T/page" || return 1
			total=$(sed -n 's/.*"totalResults":\([0-9]*\).*/\1/p' "$T/page")
			i=$((i + 100))
		done
	done
}

best() {
	_b=
	for _r in 1 2 3; do
		_s=$(date +%s.%N)
		"$@" >/dev/null 2>&1 || { echo "bench: $* failed" >&2; exit 2; }
		_e=$(date +%s.%N)
		_t=$(echo "$_e - $_s" | bc)
		if [ -z "$_b" ] || [ "$(echo "$_t < $_b" | bc)" = 1 ]; then _b=$_t; fi
	done
	printf '%.2f' "$_b"
}

ci=$(best curl_pages)
si=$(best sync-import -q -c "$T/bench.yaml" -o "$T/bench.snap" app)
/usr/bin/time -f '%M' -o "$T/rss" sync-import -q -c "$T/bench.yaml" -o "$T/bench.snap" app
echo "scim-import N=$N: curl pages ${ci}s, sync-import ${si}s, sync-import peak RSS $(cat "$T/rss") KiB"
head -1 "$T/bench.snap"
