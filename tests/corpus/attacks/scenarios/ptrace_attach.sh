# techniques: T1055.008
# Ptrace of another process: strace attaching to a running process (PTRACE_SEIZE) and Python
# ctypes calling ptrace(PTRACE_ATTACH) and reading a word of its memory (PTRACE_PEEKDATA) before
# detaching. The target is a `sleep` this script started, killed at the end.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
sleep 5 &
victim=$!
sleep 0.2
command -v strace >/dev/null && timeout 0.5 strace -p $victim -o /dev/null 2>/dev/null
if command -v python3 >/dev/null; then
  python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
if libc.ptrace(16, pid, None, None) == 0:          # PTRACE_ATTACH
    os.waitpid(pid, 0)
    libc.ptrace(2, pid, ctypes.c_void_p(0x400000), None)  # PTRACE_PEEKDATA
    libc.ptrace(17, pid, None, None)               # PTRACE_DETACH
' $victim
fi
kill $victim 2>/dev/null
wait
exit 0
