# techniques: T1574.006
# Dynamic-linker hijacking. (1) /etc/ld.so.preload written: an EMPTY file (a non-empty one
# would inject into every process), removed at once; skipped if the file already exists.
# (2) LD_PRELOAD pointing at a library dropped in /dev/shm (a harmless copy of an existing
# system library) for one command.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
p=/etc/ld.so.preload
if [ ! -e $p ]; then
  : > $p
  rm -f $p
fi
lib=
for l in /lib/x86_64-linux-gnu/libdl.so.2 /usr/lib/x86_64-linux-gnu/libdl.so.2 /lib/aarch64-linux-gnu/libdl.so.2; do
  [ -e $l ] && { lib=$l; break; }
done
if [ -n "$lib" ]; then
  d=/dev/shm/.sensor-corpus-$$
  mkdir -p $d && cp $lib $d/libsystemd-shared.so
  LD_PRELOAD=$d/libsystemd-shared.so /bin/true
  rm -rf $d
fi
exit 0
