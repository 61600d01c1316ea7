# Shared by the deployment tests: podman as this machine runs it, and PASS/FAIL/SKIP lines.
# CONTAINERS_CONF (set by xtask) points at a containers.conf with runc, cgroupfs and lowered
# default ulimits.

pm() { podman --runtime runc --cgroup-manager=cgroupfs "$@"; }

FAILED=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=$((FAILED + 1)); }
skip() { echo "SKIP $*"; }
# check NAME CMD...: PASS when CMD succeeds, FAIL otherwise.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# wait_for SECONDS CMD...: retry CMD every 0.5 s until it succeeds or time runs out.
wait_for() {
	local deadline=$((SECONDS + $1)); shift
	until "$@"; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.5
	done
}
finish() { [ "$FAILED" -eq 0 ] || { echo "$FAILED step(s) failed"; exit 1; }; }
# Stop (SIGTERM, then SIGKILL) and remove; with --pid=host podman may report the kill as timed
# out while the container is still exiting, so removal is retried.
rm_container() {
	pm stop -t 15 "$1" >/dev/null 2>&1
	for _ in 1 2 3 4 5; do pm rm -f "$1" >/dev/null 2>&1 && return 0; sleep 1; done
	echo "WARNING: container $1 not removed" >&2
}
