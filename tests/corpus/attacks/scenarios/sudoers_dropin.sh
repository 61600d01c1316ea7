# techniques: T1548.003
# Sudo rights granted through a sudoers drop-in: /etc/sudoers.d/sensor-corpus-test with a
# NOPASSWD:ALL line for a user that does not exist, mode 0440, then removed. /etc/sudoers.d is
# created (and removed) if absent; the real /etc/sudoers is never touched.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
f=/etc/sudoers.d/sensor-corpus-test
[ -e $f ] && exit 0
mkdir_created=
[ -d /etc/sudoers.d ] || { mkdir -m 755 /etc/sudoers.d && mkdir_created=1; }
echo 'sensor-corpus-nobody ALL=(ALL) NOPASSWD: ALL' > $f
chmod 0440 $f
command -v visudo >/dev/null && visudo -cf $f > /dev/null 2>&1
rm -f $f
[ -n "$mkdir_created" ] && rmdir /etc/sudoers.d
exit 0
