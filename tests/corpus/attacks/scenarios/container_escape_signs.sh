# techniques: T1611
# What container-escape tooling does, run on the host where it is harmless: new mount+network
# namespaces (unshare), entering PID 1's namespaces (nsenter -t 1 -m -u -i -n true; refused where
# PID 1 is protected), entering the namespaces of another process (a sleep started in its own
# namespaces, so setns really happens), reading a root filesystem through /proc/PID/root,
# probing /proc/1/cgroup and /.dockerenv, and mounting a tmpfs on a temp directory (unmounted).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v unshare >/dev/null && unshare -m -n true
command -v unshare >/dev/null && unshare -U -r -m true 2>/dev/null
command -v nsenter >/dev/null && nsenter -t 1 -m -u -i -n true 2>/dev/null
cat /proc/1/root/etc/hostname > /dev/null 2>&1
if command -v unshare >/dev/null && command -v nsenter >/dev/null; then
  unshare -m -n -u sleep 3 &
  t=$!
  sleep 0.2
  nsenter -t $t -m -n -u true
  cat /proc/$t/root/etc/hostname > /dev/null 2>&1
  kill $t 2>/dev/null
  wait
fi
cat /proc/1/cgroup > /dev/null 2>&1
ls -la /.dockerenv > /dev/null 2>&1
mkdir -p mnt
if mount -t tmpfs -o size=1m sensor-corpus mnt 2>/dev/null; then
  umount mnt
fi
rmdir mnt
exit 0
