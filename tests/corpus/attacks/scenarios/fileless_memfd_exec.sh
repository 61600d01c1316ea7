# techniques: T1620 T1059.006
# Fileless execution: Python copies an ELF (here /bin/true) into an anonymous memfd and executes
# it through /proc/self/fd/N, with a kernel-thread-like argv[0]. Nothing is written to disk.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v python3 >/dev/null || exit 0
python3 -c 'import os;fd=os.memfd_create("",0);os.write(fd,open("/bin/true","rb").read());os.execv("/proc/self/fd/%d"%fd,["[kworker/u8:2]"])'
# the same with fexecve-style execution of the descriptor itself (no /proc path in argv)
python3 -c 'import os;fd=os.memfd_create("x",os.MFD_CLOEXEC);os.write(fd,open("/bin/true","rb").read());os.execve(fd,["x"],{})'
exit 0
