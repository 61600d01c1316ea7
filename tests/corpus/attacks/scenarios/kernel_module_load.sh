# techniques: T1547.006
# Kernel module (rootkit) loading attempts that fail harmlessly: insmod of a file that is not
# an ELF module (the kernel rejects it, or lacks module support), and modprobe of a module that
# does not exist. Uses kmod's insmod/modprobe if present, else busybox's through insmod/modprobe
# symlinks (as on busybox-based systems), so the process names are the usual ones.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
printf 'not an ELF kernel module\n' > ./diamorphine.ko
if command -v busybox >/dev/null; then
  mkdir -p bb
  for t in insmod modprobe; do command -v $t >/dev/null || ln -s "$(command -v busybox)" bb/$t; done
  PATH=$PATH:$PWD/bb
fi
command -v insmod >/dev/null && insmod ./diamorphine.ko 2>/dev/null
command -v modprobe >/dev/null && modprobe sensor_corpus_nonexistent 2>/dev/null
rm -rf ./diamorphine.ko bb
exit 0
