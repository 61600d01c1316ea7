# techniques: T1046
# Network service discovery on 127.0.0.1 (ports closed, refused at once): the cheat-sheet bash
# /dev/tcp sweep of 50 ports (one subshell per port), a common-ports sweep in one bash process,
# a Python socket sweep of 50 ports in one process, and busybox nc probes of a few ports.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
bash -c 'for p in $(seq 20 69); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && echo "open $p"; done' > /dev/null
bash -c 'for p in 21 22 23 25 80 110 143 443 445 3306 3389 5432 6379 8080 9200 27017; do echo > /dev/tcp/127.0.0.1/$p; done' 2>/dev/null > /dev/null
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c '
import socket
for p in range(1000, 1050):
    s = socket.socket(); s.settimeout(0.2)
    if s.connect_ex(("127.0.0.1", p)) == 0: print("open", p)
    s.close()
' > /dev/null
if command -v busybox >/dev/null; then
  for p in 22 80 443; do busybox nc -w 1 127.0.0.1 $p </dev/null >/dev/null 2>&1; done
fi
exit 0
