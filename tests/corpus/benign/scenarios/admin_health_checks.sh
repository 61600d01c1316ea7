# Routine administrator health checks: systemctl/journalctl (if systemd), processes, disk,
# memory, listening sockets, addresses, uptime, CPU info, kernel messages, and `sudo -n true`
# if sudo exists.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
command -v systemctl >/dev/null && systemctl --version > /dev/null
command -v systemctl >/dev/null && systemctl --failed --no-pager > /dev/null 2>&1
command -v journalctl >/dev/null && journalctl --no-pager -n 5 > /dev/null 2>&1
ps -ef > /dev/null
df -h > /dev/null
free -m > /dev/null
command -v ss >/dev/null && ss -tln > /dev/null
command -v ip >/dev/null && ip -br a > /dev/null
uptime > /dev/null
cat /proc/cpuinfo > /dev/null
cat /proc/meminfo /proc/loadavg > /dev/null
uname -r > /dev/null
command -v sudo >/dev/null && sudo -n true 2>/dev/null
exit 0
