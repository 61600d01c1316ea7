# techniques: T1562.012 T1562.001
# Impairing defenses: the Linux audit system disabled and its rules deleted (`auditctl -e 0`,
# `auditctl -D`), SELinux set permissive, and the firewall turned off. Every one of these is a
# copy of /bin/true named like the tool (in the temp working directory), so nothing is changed
# on any host that runs this; the command lines are the real ones.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
mkdir -p sbin
for t in auditctl setenforce ufw; do cp /bin/true sbin/$t; done
./sbin/auditctl -e 0
./sbin/auditctl -D
./sbin/setenforce 0
./sbin/ufw disable
rm -rf sbin
exit 0
