# techniques: T1543.002
# Persistence through a systemd service: /etc/systemd/system/sensor-corpus-test.service with a
# loopback-only ExecStart, an attempted daemon-reload (harmless either way: the unit is removed
# right after and reloaded away if systemd is running), then removed. Never enabled or started.
unset LD_LIBRARY_PATH
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
u=/etc/systemd/system/sensor-corpus-test.service
[ -d /etc/systemd/system ] || exit 0
[ -e $u ] && exit 0
cat > $u <<'UNIT'
[Unit]
Description=sensor corpus test (removed immediately)
[Service]
ExecStart=/bin/sh -c 'exec 3<>/dev/tcp/127.0.0.1/1'
Restart=always
[Install]
WantedBy=multi-user.target
UNIT
chmod 644 $u
reload=
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload 2>/dev/null && reload=1
fi
rm -f $u
[ -n "$reload" ] && systemctl daemon-reload 2>/dev/null
exit 0
