# techniques: T1036.005
# Payloads named after trusted system processes and run from temp locations: /tmp/kworker and
# /dev/shm/sshd (copies of /bin/sleep, run briefly), plus an argv[0] spoofed to look like a
# kernel thread (`exec -a "[kworker/0:1]"`). Paths already in use are skipped; all removed.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
for f in /tmp/kworker /dev/shm/sshd; do
  [ -e $f ] && continue
  cp /bin/sleep $f && chmod 755 $f && $f 0.2
  rm -f $f
done
mkdir -p .cache && cp /bin/sleep .cache/systemd-journald
bash -c 'exec -a "[kworker/0:1]" ./.cache/systemd-journald 0.2'
rm -rf .cache
exit 0
