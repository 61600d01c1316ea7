# techniques: T1136.001
# A local account created for persistence (useradd with a home and a shell, a password set,
# added to a privileged group), then deleted with its home: sensor-corpus-u. Skipped if the
# name already exists.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
u=sensor-corpus-u
command -v useradd >/dev/null || exit 0
id $u >/dev/null 2>&1 && exit 0
useradd -m -s /bin/bash $u || exit 0
echo "$u:Sens0rCorpus!" | chpasswd 2>/dev/null
usermod -aG adm $u 2>/dev/null
userdel -r $u 2>/dev/null
id $u >/dev/null 2>&1 && userdel -f $u
exit 0
