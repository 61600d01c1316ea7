# techniques: T1572 T1090
# Tunneling and proxy tools: chisel reverse SOCKS client, ngrok exposing SSH, and ssh remote and
# dynamic port forwarding. chisel and ngrok are copies of /bin/true with the tools' real
# command lines; ssh really runs but targets 127.0.0.1 port 1 (refused at once).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
mkdir -p .t && cp /bin/true .t/chisel && cp /bin/true .t/ngrok
./.t/chisel client --fingerprint xyz 127.0.0.1:8080 R:socks
./.t/chisel client 127.0.0.1:8080 R:2222:127.0.0.1:22
./.t/ngrok tcp 22
./.t/ngrok http 8080 --authtoken 2abcFAKEsensorCorpus
if command -v ssh >/dev/null; then
  o="-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=2 -p 1"
  ssh $o -N -R 0.0.0.0:9999:127.0.0.1:22 tunnel@127.0.0.1 2>/dev/null
  ssh $o -f -N -D 1080 tunnel@127.0.0.1 2>/dev/null
fi
rm -rf .t
exit 0
