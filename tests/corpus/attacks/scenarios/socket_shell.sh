# techniques: T1059.004
# A shell whose stdin/stdout is a TCP socket on loopback (the reverse-shell shape), running
# a few discovery commands. Python provides both ends; nothing leaves 127.0.0.1.
python3 - <<'PY'
import os, socket, subprocess
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
p = subprocess.Popen(["/bin/sh", "-i"], stdin=c.fileno(), stdout=c.fileno(), stderr=subprocess.DEVNULL)
s.sendall(b"id; uname -a; exit\n")
p.wait(timeout=10)
PY
