# A cron-style maintenance job: a script (run with sh) that writes its own log, rotates it (rename .1, .2),
# gzips the old one, removes rotated logs older than a day with find -mtime, and truncates a
# scratch file. Everything lives in the temp working directory.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
mkdir -p logs
cat > rotate.sh <<'JOB'
#!/bin/sh
cd "$(dirname "$0")/logs" || exit 1
date >> job.log
for i in 1 2 3; do echo "run $i ok" >> job.log; done
[ -e job.log.1.gz ] && mv job.log.1.gz job.log.2.gz
[ -e job.log ] && mv job.log job.log.1 && gzip -9 job.log.1
: > job.log
find . -name 'job.log.*.gz' -mtime +1 -delete
truncate -s 0 scratch.tmp 2>/dev/null || : > scratch.tmp
JOB
# run the way a crontab line `sh /path/rotate.sh` does (twice, as two scheduled runs)
/bin/sh ./rotate.sh
/bin/sh ./rotate.sh
ls -l logs > /dev/null
rm -rf logs rotate.sh
exit 0
