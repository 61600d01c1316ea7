# techniques: T1098.004
# SSH persistence: an attacker key appended to /root/.ssh/authorized_keys. The key is not a
# valid public key (nobody holds a matching private key). The file is restored byte-for-byte
# (copied aside first with cp -p) or removed if it did not exist; ~/.ssh is removed if created.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
d=/root/.ssh
f=$d/authorized_keys
bak=$PWD/authorized_keys.orig
dir_created=
had_file=
[ -d $d ] || { mkdir -m 700 $d && dir_created=1; }
[ -e $f ] && { cp -p $f "$bak" && had_file=1; }
restore() {
  if [ -n "$had_file" ]; then cp -p "$bak" $f && rm -f "$bak"; else rm -f $f; fi
  if [ -n "$dir_created" ]; then rmdir $d; fi
}
trap restore EXIT
echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISensorCorpusFakeKeyNotValid sensor-corpus-test' >> $f
chmod 600 $f
exit 0
