#!/bin/sh
# The Debian packages that `make check` and `make demo` install (DEBS in
# the Makefile) bring everything the tests and the demo use.  deps.sh
# installs without recommended packages, as on a fresh machine, so a
# program or data file must belong to a package of DEBS or to one that
# they depend on: a package that only comes as a recommendation (the
# Samba AD DC's schema files, samba-ad-provision, did) is missing there
# even though a used machine has it.
. "$(dirname "$0")/lib.sh"

make -s -C "$TOP" print-debs >"$T/debs" 2>"$T/debs.err"
ok "make print-debs lists the packages" test -s "$T/debs"

# The closure of DEBS under Depends and Pre-Depends (no recommendations).
# shellcheck disable=SC2046
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $(cat "$T/debs") >"$T/closure.raw" 2>"$T/closure.err"
grep -v '^ ' "$T/closure.raw" | sed 's/:.*//' | sort -u >"$T/closure"
ok "apt-cache resolves the dependencies of DEBS" test -s "$T/closure"

# What the tests and the demo run or read, and why.
arch=$(dpkg --print-architecture 2>/dev/null)
case $arch in amd64) triplet=x86_64-linux-gnu ;; arm64) triplet=aarch64-linux-gnu ;; *) triplet=$arch-linux-gnu ;; esac
while read -r path why; do
	[ -n "$path" ] || continue
	path=$(printf '%s' "$path" | sed "s|@TRIPLET@|$triplet|")
	if ! owner=$(dpkg-query -S "$path" 2>/dev/null); then
		fail "$why: $path is installed"
		continue
	fi
	# "pkg1, pkg2: path" (shared directories name several packages).
	found=
	for p in $(printf '%s\n' "$owner" | sed 's/: .*//; s/,/ /g'); do
		p=${p%%:*}
		grep -qx "$p" "$T/closure" && found=$p
	done
	if [ -n "$found" ]; then
		pass "$why: $path comes with DEBS ($found)"
	else
		fail "$why: $path comes with DEBS" "its package ($(printf '%s' "$owner" | sed 's/: .*//')) is not DEBS nor a dependency of one"
	fi
done <<'EOF2'
/usr/sbin/slapd                                   the slapd tests
/usr/bin/ldapsearch                               snapcheck and the benchmarks
/usr/bin/ldapadd                                  seeding slapd
/usr/sbin/samba                                   the Samba AD DC tests
/usr/bin/samba-tool                               provisioning the Samba domain
/usr/share/samba/setup/ad-schema                  provisioning the Samba domain
/usr/share/samba/setup/provision.ldif             provisioning the Samba domain
/usr/lib/@TRIPLET@/samba/ldb/samba_dsdb.so        the AD DC's database
/usr/bin/python3                                  the Graph emulator
/usr/bin/prove                                    tests/run.sh
/usr/bin/mandoc                                   tests/0010-man.t
/usr/bin/curl                                     the emulator's control API
/bin/ip                                           Samba's loopback addresses
/usr/bin/etcd                                     the etcd lease tests
/usr/bin/etcdctl                                  etcd users for the lease tests
/usr/bin/pkg-config                               the build
/usr/include/jansson.h                            the build
/usr/include/yaml.h                               the build
/usr/include/ldap.h                               the build
/usr/include/@TRIPLET@/curl/curl.h                the build
/usr/include/openssl/sha.h                        the build
EOF2

done_testing
