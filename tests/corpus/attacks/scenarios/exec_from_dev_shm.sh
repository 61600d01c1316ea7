# techniques: T1564.001 T1036.005
# A payload staged in a hidden directory of /dev/shm (memory-backed, world-writable, survives
# only until reboot) under a kernel-thread name, and executed from there, also with cwd in
# /dev/shm and a relative path. The payload is a copy of /bin/sleep; everything is removed.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
d=/dev/shm/.sensor-corpus-$$
mkdir -p $d && cp /bin/sleep $d/kworker && chmod +x $d/kworker
$d/kworker 0.2
(cd $d && ./kworker 0.1)
rm -rf $d
exit 0
