# Package-manager queries an administrator runs: dpkg listing and status, apt-cache policy and
# show, and a simulated install (apt-get -s: nothing is downloaded or installed).
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v dpkg >/dev/null || exit 0
dpkg -l > /dev/null
dpkg -s bash > /dev/null 2>&1
dpkg -L coreutils > /dev/null 2>&1
command -v apt-cache >/dev/null && apt-cache policy bash > /dev/null 2>&1
command -v apt-cache >/dev/null && apt-cache show coreutils > /dev/null 2>&1
command -v apt-get >/dev/null && apt-get -s install hello > /dev/null 2>&1
exit 0
