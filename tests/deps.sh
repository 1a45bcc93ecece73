#!/bin/sh
# deps.sh PACKAGE...: installs the Debian packages that are missing.
# As root it runs apt-get; otherwise it prints the one line to run.
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages; run as root:" >&2
	echo "  apt-get install$missing" >&2
	exit 2
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || exit 2
# The packages' own services (slapd, samba) are not used: the tests start
# throw-away servers of their own.  policy-rc.d keeps apt from starting them.
norc=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	norc=1
fi
apt-get install -y -qq --no-install-recommends $missing >/dev/null
rc=$?
[ -n "$norc" ] && rm -f /usr/sbin/policy-rc.d
exit $rc
