#!/bin/bash
# The runtime image (deploy/container/Containerfile) as Kubernetes runs it: privileged, host
# PID namespace, read-only root, kernel paths and the state dir mounted. It must see the host:
# a uniquely named process started on the host shows up in its events (through the state dir's
# control socket, with the host PID), and an alert about it carries the node name.
# Usage: container.sh IMAGE SENSOR_BIN (a host-side sensor binary for the CLI).
set -u
. "$(dirname "$0")/lib.sh"
IMAGE=$1 CLI=$2
NAME=sensor-deploy-container-$$
WORK=$(mktemp -d -p "${TMPDIR:-/tmp}" sensor-deploy.XXXXXX)
STATE=$WORK/state HPID=
cleanup() {
	[ -n "$HPID" ] && kill "$HPID" 2>/dev/null
	rm_container "$NAME"
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
mkdir -p "$STATE"

pm run -d --name "$NAME" --privileged --pid=host --read-only \
	--ulimit nofile=16384:16384 --ulimit nproc=4096:4096 \
	-v "$STATE:/var/lib/sensor" -v /sys/kernel/tracing:/sys/kernel/tracing \
	-v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/fs/bpf:/sys/fs/bpf \
	-e SENSOR_NODE_NAME=deploy-test-node -e SENSOR_POD_NAME=deploy-test-pod -e SENSOR_POD_NAMESPACE=deploy-test-ns \
	"$IMAGE" >/dev/null || { fail "runtime image starts"; finish; }
running() { "$CLI" status --state-dir "$STATE" >/dev/null 2>&1; }
if wait_for 60 running; then
	pass "agent in the image is running (status through the mounted state dir)"
else
	pm logs "$NAME" 2>&1 | tail -5; fail "agent in the image is running"; finish
fi
check "agent attached its probes (container log)" sh -c "podman --runtime runc logs $NAME 2>&1 | grep -q 'probes attached'"

# A host process with a name nothing else has.
tag=sdt$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
cp /bin/sleep "$WORK/$tag"
"$WORK/$tag" 60 &
HPID=$!
seen() { "$CLI" events tail -n 1024 --kind exec --comm "$tag" --json --state-dir "$STATE" 2>/dev/null | grep -q "\"pid\":$HPID,"; }
check "host process $tag (host PID $HPID) seen by the containerized agent" wait_for 15 seen

# An alert about a host process, with the node identity from the environment (downward API).
cp /bin/cat "$WORK/$tag"c
"$WORK/$tag"c /etc/shadow >/dev/null
alerted() { cat "$STATE"/alerts/*.jsonl 2>/dev/null | grep -F "${tag}c" | grep -q "deploy-test-node"; }
if ! grep -qa SENSOR_NODE_NAME "$CLI"; then
	fail "alert carries SENSOR_NODE_NAME (this agent build does not read it)"
else
	check "alert on the host's /etc/shadow read carries node name deploy-test-node" wait_for 15 alerted
fi
finish
