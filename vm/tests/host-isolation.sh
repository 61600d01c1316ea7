#!/bin/sh
# In the VM only (its own kernel, so attaching to the root cgroup confines nothing else):
# `sensor contain isolate --host`, with host isolation enabled, refuses every connect except
# to the allow-list, the control socket keeps working, and `sensor release` restores the
# network. Usage: host-isolation.sh SENSOR_BIN
set -eu
sensor=$1
work=/tmp/hostiso
rm -rf $work; mkdir -p $work/state
ip link set lo up 2>/dev/null || true
ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
# A listener that answers every connection.
(while :; do echo hi | nc -l -p 7002 >/dev/null 2>&1 || sleep 0.1; done) &
listener=$!
"$sensor" config default \
    | sed 's/^allow_host_isolation = false/allow_host_isolation = true/; s/^isolation_allow = \[\]/isolation_allow = ["127.0.0.1:7001"]/' \
    > $work/sensor.toml
"$sensor" --state-dir $work/state --config $work/sensor.toml run 2>$work/agent.log &
agent=$!
cleanup() { kill $agent $listener 2>/dev/null || true; }
trap cleanup EXIT
i=0
until "$sensor" --state-dir $work/state status >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 150 ] || { cat $work/agent.log; echo "agent did not start"; exit 1; }
    sleep 0.2
done
# connect ADDR PORT: prints what nc said (empty when it connected).
connect() { nc -w 2 "$1" "$2" </dev/null 2>&1 >/dev/null || true; }
before=$(connect 127.0.0.2 7002)
case "$before" in *"not permitted"*) echo "refused before isolation: $before"; exit 1;; esac
out=$("$sensor" --state-dir $work/state contain isolate --host)
echo "$out"
id=$(echo "$out" | sed -n 's/^release with: sensor release //p')
during=$(connect 127.0.0.2 7002)
case "$during" in
    *"not permitted"*) echo "isolated: connect to 127.0.0.2:7002 refused ($during)";;
    *) echo "connect to a non-allowed address was not refused: '$during'"; exit 1;;
esac
allowed=$(connect 127.0.0.1 7001)
case "$allowed" in
    *"not permitted"*) echo "the allow-listed address was refused: $allowed"; exit 1;;
    *) echo "isolated: connect to the allow-listed 127.0.0.1:7001 passes the isolation";;
esac
# The control socket (unix) still answers while isolated.
"$sensor" --state-dir $work/state status | grep '^response'
"$sensor" --state-dir $work/state release "$id"
after=$(connect 127.0.0.2 7002)
case "$after" in *"not permitted"*) echo "still refused after release: $after"; exit 1;; esac
echo "host isolation: non-allowed connects refused, allow-list passes, release restores"
