# techniques: T1046
# Network service discovery: a bash /dev/tcp connect sweep of 50 ports on 127.0.0.1 (almost all
# closed, refused at once), then a busybox nc banner-grab attempt on a few well-known ports.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
bash -c 'for p in $(seq 20 69); do (echo > /dev/tcp/127.0.0.1/$p) 2>/dev/null && echo "open $p"; done' > /dev/null
bash -c 'for p in 21 22 23 25 80 110 143 443 445 3306 3389 5432 6379 8080 9200 27017; do echo > /dev/tcp/127.0.0.1/$p; done' 2>/dev/null > /dev/null
if command -v busybox >/dev/null; then
  for p in 22 80 443; do busybox nc -w 1 127.0.0.1 $p </dev/null >/dev/null 2>&1; done
fi
exit 0
