# techniques: T1070.002
# System log files cleared: a throwaway /var/log/sensor-corpus-test.log (created here, never a
# real log) truncated with `truncate -s 0`, emptied with a redirection, and destroyed with
# `shred -u`; a second one removed with rm. Nothing else under /var/log is touched.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
[ -d /var/log ] || exit 0
l=/var/log/sensor-corpus-test.log
l2=/var/log/sensor-corpus-test-auth.log
[ -e $l ] || [ -e $l2 ] && exit 0
printf 'Accepted password for root from 198.51.100.7 port 4711 ssh2\n%.0s' 1 2 3 > $l
cp $l $l2
truncate -s 0 $l
echo > $l
shred -u $l 2>/dev/null || rm -f $l
rm -f $l2
exit 0
