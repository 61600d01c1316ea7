#!/bin/sh
# Regenerates the sensor's own profiles in profiles/ by letting one agent learn another:
# agent B (the learner) watches agent A (the subject) start twice (the second start is
# recorded from exec on, start-up included) and work for DURATION seconds while
# `sensor status`, `events tail` and a few commands exercise it; then B's baseline of A is
# frozen and rendered. Root. `SENSOR_BIN` defaults to target/release/sensor.
#   profiles/regenerate.sh [DURATION]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
sensor=${SENSOR_BIN:-$top/target/release/sensor}
duration=${1:-20}
work=$(mktemp -d)
trap 'kill $learner $subject 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT
exe=$(readlink -f "$sensor")
"$sensor" config default \
  | sed "s|^roots = \[\]|roots = [\"$exe\"]|; s|^min_events = 200|min_events = 20|; s|^save_interval_secs = 30|save_interval_secs = 1|" \
  > "$work/learner.toml"
"$sensor" --config "$work/learner.toml" --state-dir "$work/learner" run 2>"$work/learner.log" &
learner=$!
while [ ! -S "$work/learner/sensor.sock" ]; do sleep 0.2; done
for round in 1 2; do
  "$sensor" --state-dir "$work/subject" run 2>"$work/subject.log" &
  subject=$!
  while [ ! -S "$work/subject/sensor.sock" ]; do sleep 0.2; done
  end=$(( $(date +%s) + duration ))
  while [ "$(date +%s)" -lt "$end" ]; do
    "$sensor" --state-dir "$work/subject" status >/dev/null
    "$sensor" --state-dir "$work/subject" events tail -n 5 >/dev/null
    "$sensor" --state-dir "$work/subject" alerts tail -n 5 >/dev/null
    "$sensor" --state-dir "$work/subject" baseline list >/dev/null
    kill -HUP "$subject"
    ls /tmp >/dev/null; cat /etc/hostname >/dev/null
    sleep 0.5
  done
  kill "$subject"; wait "$subject" || true
  sleep 2
done
workload="exe:$exe@root"
"$sensor" --state-dir "$work/learner" baseline freeze "$workload"
"$sensor" --state-dir "$work/learner" profile generate "$workload" --format seccomp --out "$work/out"
cp "$work"/out/*.seccomp.json "$here/learned.seccomp.json"
/usr/bin/python3 -I -S "$here/agent-profile.py" "$here/learned.seccomp.json" "$here/sensor-agent.profile.json"
rm "$here/learned.seccomp.json"
"$sensor" profile render "$here/sensor-agent.profile.json" --out "$work/render"
cp "$work"/render/*.seccomp.json "$here/sensor-agent.seccomp.json"
cp "$work"/render/*.apparmor "$here/sensor-agent.apparmor"
echo "wrote $here/sensor-agent.{profile.json,seccomp.json,apparmor}"
