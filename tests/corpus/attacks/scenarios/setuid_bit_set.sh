# techniques: T1548.001
# Setuid/setgid bits set on a dropped binary (the "rootbash" backdoor pattern): chmod u+s,
# chmod 4755 and chmod g+s on copies in the temp working directory, then run. The copies are of
# /bin/true (not a shell), so even the brief window exposes nothing; they are removed.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
cp /bin/true ./.rootbash
chmod u+s ./.rootbash
./.rootbash -p
cp /bin/true /tmp/.sensor-corpus-suid-$$
chmod 4755 /tmp/.sensor-corpus-suid-$$
chmod g+s /tmp/.sensor-corpus-suid-$$
/tmp/.sensor-corpus-suid-$$
rm -f ./.rootbash /tmp/.sensor-corpus-suid-$$
exit 0
