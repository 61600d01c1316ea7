# techniques: T1003.008
# /etc/shadow (and gshadow) read by programs that have no business reading them: cat, head, dd,
# a renamed copy of cat in a temp directory, and a Python one-liner. Contents go to /dev/null.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
cat /etc/shadow > /dev/null
head -n 3 /etc/shadow > /dev/null
dd if=/etc/shadow of=/dev/null status=none
[ -e /etc/gshadow ] && grep -c . /etc/gshadow > /dev/null
cp /bin/cat ./.u && ./.u /etc/shadow > /dev/null && rm -f ./.u
command -v python3 >/dev/null && python3 -c 'print(len(open("/etc/shadow").read().splitlines()))' > /dev/null
exit 0
