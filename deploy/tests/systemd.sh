#!/bin/bash
# The Debian package under a real systemd (PID 1 of a privileged podman container built from a
# debootstrap rootfs), with the agent loading its probes into this host's kernel.
# Usage: systemd.sh IMAGE FIRST.deb SECOND.deb (the same package, two versions).
set -u
. "$(dirname "$0")/lib.sh"
IMAGE=$1 DEB1=$2 DEB2=$3
NAME=sensor-deploy-systemd-$$
cleanup() { rm_container "$NAME"; }
trap cleanup EXIT INT TERM

in_c() { pm exec "$NAME" "$@"; }
prop() { in_c systemctl show -p "$1" --value sensor; }

DEBDIR=$(cd "$(dirname "$DEB1")" && pwd)
# nofile: the unit's LimitNOFILE must fit under the container's hard limit (this VM lacks
# CAP_SYS_RESOURCE, so nothing can raise it).
pm run -d --name "$NAME" --privileged --systemd=always --ulimit nofile=16384:16384 --ulimit nproc=4096:4096 \
	-v "$DEBDIR:/debs:ro" "$IMAGE" /sbin/init >/dev/null || { fail "container with systemd as PID 1 starts"; finish; }
booted() { case $(in_c systemctl is-system-running 2>/dev/null) in running|degraded) return 0;; *) return 1;; esac; }
check "systemd boots as PID 1 in the container" wait_for 60 booted

# The agent speaks sd_notify (READY=1 after attach, WATCHDOG=1). A binary without it cannot
# satisfy Type=notify: report that, and run the rest with a Type=simple drop-in.
if dpkg-deb --fsys-tarfile "$DEB1" | tar -xO ./usr/bin/sensor | grep -qa NOTIFY_SOCKET; then
	pass "agent binary speaks sd_notify"
else
	fail "agent binary speaks sd_notify (no NOTIFY_SOCKET in it; rest runs with Type=simple, no watchdog)"
	in_c sh -c 'mkdir -p /etc/systemd/system/sensor.service.d && printf "[Service]\nType=simple\nWatchdogSec=0\n" > /etc/systemd/system/sensor.service.d/no-notify.conf'
fi

check "dpkg -i $(basename "$DEB1")" in_c dpkg -i "/debs/$(basename "$DEB1")"
if in_c sensor config check --config /etc/sensor/sensor.toml >/dev/null 2>&1; then
	pass "packaged /etc/sensor/sensor.toml is valid for the packaged agent"
else
	in_c sensor config check --config /etc/sensor/sensor.toml 2>&1 | tail -3
	fail "packaged /etc/sensor/sensor.toml is valid for the packaged agent (rest runs without [alert_log] dir)"
	in_c sed -i '/^dir = "\/var\/log\/sensor"/d' /etc/sensor/sensor.toml
	in_c systemctl restart sensor
fi

# systemd-analyze verify exits 0 on unknown keys: any output at all is a failure.
out=$(in_c systemd-analyze verify /usr/lib/systemd/system/sensor.service 2>&1)
if [ -z "$out" ]; then pass "systemd-analyze verify sensor.service: no output"; else echo "$out"; fail "systemd-analyze verify sensor.service: no output"; fi

active() { [ "$(in_c systemctl is-active sensor)" = active ]; }
check "enabled by the package" test "$(in_c systemctl is-enabled sensor)" = enabled
check "active after install (Type=$(prop Type): readiness reached)" wait_for 90 active
attached() { in_c journalctl -u sensor --no-pager -o cat | grep -q "probes attached"; }
check "journal shows the agent's start (probes attached)" wait_for 10 attached
in_c journalctl -u sensor --no-pager -o cat | grep -E "probes attached|sensor running" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /'

# The sandbox as designed, seen from inside the agent's own mount namespace.
pid=$(prop MainPID)
ns() { in_c nsenter -t "$pid" -m sh -c "$1" 2>/dev/null; }
check "sandbox: /usr read-only for the agent" ns '! touch /usr/.sensor-rw 2>/dev/null'
check "sandbox: /home read-only for the agent" ns '! touch /home/.sensor-rw 2>/dev/null'
shared_tmp() { in_c sh -c 'echo x > /tmp/.sensor-probe' && [ "$(ns 'cat /tmp/.sensor-probe && rm /tmp/.sensor-probe')" = x ]; }
check "sandbox: host /tmp shared and writable (quarantine)" shared_tmp
check "sandbox: cgroup files writable (containment)" ns 'd=/sys/fs/cgroup/unified/sensor-deploy-test; [ -d /sys/fs/cgroup/unified ] || d=/sys/fs/cgroup/sensor-deploy-test; mkdir "$d" && rmdir "$d"'
bounded() { ! in_c grep -q 'CapBnd:.*1ffffffffff' "/proc/$pid/status"; }
check "sandbox: capability bounding set is the unit's, not full" bounded
in_c systemd-analyze security sensor --no-pager 2>/dev/null | tail -1 | sed 's/^/    /'
# What the resource limits (MemoryMax, TasksMax, LimitNOFILE) bound, for the README.
in_c sh -c "echo \"    agent: \$(grep -E 'VmRSS|Threads' /proc/$pid/status | tr -s '\t\n' '  ') fds: \$(ls /proc/$pid/fd | wc -l)\""

# Health endpoints on the metrics listener (127.0.0.1:9464 in the packaged config).
http_status() { in_c bash -c "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET $1 HTTP/1.0\r\nHost: x\r\n\r\n' >&3 && head -1 <&3" 2>/dev/null | tr -d '\r'; }
for p in /metrics /healthz /readyz; do
	s=$(http_status "$p")
	if [[ "$s" == *" 200 "* || "$s" == *" 200" ]]; then pass "GET $p: $s"; else fail "GET $p: 200 (got: ${s:-no answer})"; fi
done

# Restart on failure: SIGKILL the main process.
n0=$(prop NRestarts) pid0=$(prop MainPID)
in_c sh -c "kill -9 $pid0"
restarted() { [ "$(prop NRestarts)" -gt "$n0" ] && active && [ "$(prop MainPID)" != "$pid0" ]; }
check "kill -9 main PID: NRestarts $n0 -> $((n0 + 1)), active again with a new PID" wait_for 60 restarted

# Upgrade: state and conffile edits survive, the service restarts on the new version.
in_c sh -c 'echo keep > /var/lib/sensor/deploy-test-marker'
in_c sed -i 's/^fold_window_secs = 60$/fold_window_secs = 61/' /etc/sensor/sensor.toml
pid0=$(prop MainPID)
check "upgrade: dpkg -i $(basename "$DEB2")" in_c sh -c "dpkg -i /debs/$(basename "$DEB2") </dev/null"
check "upgrade: new version installed ($(in_c dpkg-query -W -f '${Version}' sensor))" \
	test "$(in_c dpkg-query -W -f '${Version}' sensor)" = "$(dpkg-deb -f "$DEB2" Version)"
check "upgrade: file in /var/lib/sensor survived" test "$(in_c cat /var/lib/sensor/deploy-test-marker)" = keep
check "upgrade: conffile edit kept" in_c grep -q '^fold_window_secs = 61$' /etc/sensor/sensor.toml
# Serving on its control socket: started, not just spawned (matters without sd_notify).
serving() { in_c sensor status >/dev/null 2>&1; }
upgraded() { active && [ "$(prop MainPID)" != "$pid0" ] && serving; }
check "upgrade: service restarted and active" wait_for 90 upgraded

# Clean stop: SIGTERM, the agent exits 0.
in_c systemctl stop sensor
stopped_clean() { [ "$(in_c systemctl is-active sensor)" = inactive ] && [ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ]; }
check "systemctl stop: inactive, Result=success, exit status 0" stopped_clean
stopped_clean || echo "    $(in_c systemctl show -p ActiveState -p Result -p ExecMainCode -p ExecMainStatus sensor | tr '\n' ' ')"

# Remove keeps state; purge deletes it.
in_c dpkg -r sensor >/dev/null
check "dpkg -r: state kept" in_c test -f /var/lib/sensor/deploy-test-marker
in_c dpkg -P sensor >/dev/null
check "dpkg -P: state and config deleted" in_c sh -c '! test -e /var/lib/sensor && ! test -e /etc/sensor/sensor.toml'
finish
