# techniques: T1552.004
# Private SSH keys hunted for and read by non-ssh programs. HOME is a throwaway
# /home/sensor-corpus-test (not a real account; removed) holding fake keys (PEM header, no key
# material): find, cat, grep for the PEM header, and an archive of ~/.ssh to /tmp (removed).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
# A throwaway home under /home (the real path pattern), else under the temp working directory.
HOME=/home/sensor-corpus-test
{ [ -d /home ] && [ ! -e $HOME ]; } || HOME=$PWD/home
export HOME
mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
for k in id_rsa id_ed25519; do
  printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nc2Vuc29yLWNvcnB1cy1mYWtlLWtleQ==\n-----END OPENSSH PRIVATE KEY-----\n' > "$HOME/.ssh/$k"
  chmod 600 "$HOME/.ssh/$k"
done
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeSensorCorpus user@host' > "$HOME/.ssh/id_ed25519.pub"
find /home -maxdepth 3 -name id_rsa 2>/dev/null > /dev/null
cat "$HOME/.ssh/id_rsa" > /dev/null
grep -rl 'PRIVATE KEY' "$HOME/.ssh" > /dev/null
t=/tmp/.k-sensor-corpus-$$.tgz
tar czf $t -C "$HOME" .ssh && rm -f $t
rm -rf "$HOME"
exit 0
