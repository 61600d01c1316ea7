# techniques: T1070.004
# A dropped binary deletes itself: it is opened, unlinked, and executed through its still-open
# descriptor (/proc/self/fd/3), so the running image has no path on disk. Also the common
# start-then-delete pattern. The binary is a copy of /bin/sleep in the temp working directory.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
cp /bin/sleep ./updater && chmod +x ./updater
sh -c 'exec 3<./updater; rm -f ./updater; exec /proc/self/fd/3 0.2'
cp /bin/sleep ./.agent && ./.agent 1 &
sleep 0.2; rm -f ./.agent
wait
exit 0
