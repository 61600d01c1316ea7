# SSH client use without a connection: version, a fresh ed25519 key pair generated into the temp
# working directory, its fingerprint, a public key derived from the private one, and a config
# dry run (ssh -G). The key is the user's own and is deleted at the end.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v ssh-keygen >/dev/null || exit 0
ssh -V 2>/dev/null
ssh-keygen -q -t ed25519 -N '' -C 'dev@workstation' -f "$PWD/k"
ssh-keygen -l -f "$PWD/k.pub" > /dev/null
ssh-keygen -y -f "$PWD/k" > /dev/null
ssh -G -F /dev/null git@example.com > /dev/null 2>&1
rm -f "$PWD/k" "$PWD/k.pub"
exit 0
