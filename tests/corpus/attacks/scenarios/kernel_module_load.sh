# techniques: T1547.006
# Kernel module (rootkit) loading attempts that fail harmlessly: insmod of a file that is not
# an ELF module (the kernel rejects it, or lacks module support), and modprobe of a module that
# does not exist. Uses kmod's insmod/modprobe if present, else busybox's.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
printf 'not an ELF kernel module\n' > ./diamorphine.ko
if command -v insmod >/dev/null; then insmod ./diamorphine.ko 2>/dev/null
elif command -v busybox >/dev/null; then busybox insmod ./diamorphine.ko 2>/dev/null; fi
if command -v modprobe >/dev/null; then modprobe sensor_corpus_nonexistent 2>/dev/null
elif command -v busybox >/dev/null; then busybox modprobe sensor_corpus_nonexistent 2>/dev/null; fi
rm -f ./diamorphine.ko
exit 0
