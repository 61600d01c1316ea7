# techniques: T1496
# Cryptocurrency miner: a binary named xmrig started with a stratum pool URL and wallet, and a
# process named xmrig connecting to a "pool" (127.0.0.1:3333, a Python listener) and sending a
# stratum login. Both are stand-ins: a copy of /bin/true, and a copy of busybox acting as nc.
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
    c, _ = l.accept(); c.settimeout(1)
    c.sendall(cmd.encode() + b"\n")
    try:
        while c.recv(65536): pass
    except OSError: pass
    c.close()
' "$1" "$2" "${3:-1}" &
  lpid=$!
  i=0; while [ ! -e "ready.$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
}

mkdir -p .xmr && cp /bin/true .xmr/xmrig
./.xmr/xmrig -o stratum+tcp://127.0.0.1:3333 -u 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A -p x -k --donate-level 1 --cpu-max-threads-hint 50 -B
if command -v busybox >/dev/null; then
  cp "$(command -v busybox)" .xmr/xmrig
  listen 3333 '{"id":1,"jsonrpc":"2.0","result":{"id":"1","job":{},"status":"OK"}}'
  echo '{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33","pass":"x","agent":"XMRig/6.21.0"}}' \
    | bash -c 'exec -a nc ./.xmr/xmrig -w 2 127.0.0.1 3333' > /dev/null 2>&1
  wait
fi
rm -rf .xmr ready.*
exit 0
