#!/bin/sh
# gen-big-group.sh slapd|samba [N] [PART]: LDIF on stdout for the big-group seed.
#
#   slapd: ou=Bulk,dc=example,dc=org with N inetOrgPerson users
#          uid=bulkNNNNN,ou=Bulk,dc=example,dc=org (NNNNN = 00001..N), then
#          cn=Big Group,ou=Groups,dc=example,dc=org (groupOfNames) with all N
#          as members in one add.
#   samba: PART=objects: OU=Bulk,DC=samdom,DC=test with N contacts
#          CN=bulkNNNNN,OU=Bulk,DC=samdom,DC=test (objectClass contact: cheaper
#          than users, no RID), and CN=Big Group,OU=Groups,DC=samdom,DC=test
#          (group, sAMAccountName big-group) with no members;
#          PART=members: one modify adding all N member values.
# N defaults to 5000. Needs the small seed (ou=Groups) loaded first.
set -e
kind=$1 n=${2:-5000} part=${3:-all}
case $kind in
slapd)
	awk -v n="$n" 'BEGIN {
		print "dn: ou=Bulk,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Bulk\n"
		for (i = 1; i <= n; i++) {
			u = sprintf("bulk%05d", i)
			printf "dn: uid=%s,ou=Bulk,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: %s\ncn: Bulk User %d\nsn: User%d\nmail: %s@example.org\n\n", u, u, i, i, u
		}
		print "dn: cn=Big Group,ou=Groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: Big Group\ndescription: seed group big-group"
		for (i = 1; i <= n; i++)
			printf "member: uid=bulk%05d,ou=Bulk,dc=example,dc=org\n", i
		print ""
	}'
	;;
samba)
	if [ "$part" != members ]; then
		awk -v n="$n" 'BEGIN {
			print "dn: OU=Bulk,DC=samdom,DC=test\nobjectClass: organizationalUnit\nou: Bulk\n"
			for (i = 1; i <= n; i++) {
				u = sprintf("bulk%05d", i)
				printf "dn: CN=%s,OU=Bulk,DC=samdom,DC=test\nobjectClass: contact\nsn: User%d\nmail: %s@samdom.test\n\n", u, i, u
			}
			print "dn: CN=Big Group,OU=Groups,DC=samdom,DC=test\nobjectClass: group\nsAMAccountName: big-group\ndescription: seed group big-group\n"
		}'
	fi
	if [ "$part" != objects ]; then
		awk -v n="$n" 'BEGIN {
			print "dn: CN=Big Group,OU=Groups,DC=samdom,DC=test\nchangetype: modify\nadd: member"
			for (i = 1; i <= n; i++)
				printf "member: CN=bulk%05d,OU=Bulk,DC=samdom,DC=test\n", i
			print "-\n"
		}'
	fi
	;;
*)
	echo "usage: gen-big-group.sh slapd|samba [N] [all|objects|members]" >&2
	exit 2
	;;
esac
