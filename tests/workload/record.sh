#!/bin/sh
# Records tests/corpus/workload/webapp.jsonl.gz: webapp.py exercised for DURATION seconds
# (default 300) by a steady client, events of its process tree only. Root; builds nothing.
#   tests/workload/record.sh [DURATION]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
sensor=${SENSOR_BIN:-$top/target/debug/sensor}
duration=${1:-300}
work=$(mktemp -d)
trap 'kill $agent $app 2>/dev/null || true; rm -rf "$work"' EXIT
"$sensor" --state-dir "$work/state" run 2>"$work/agent.log" &
agent=$!
while [ ! -S "$work/state/sensor.sock" ]; do sleep 0.2; done
/usr/bin/python3 -I -S "$here/webapp.py" "$work" 18280 &
app=$!
sleep 1
"$sensor" --state-dir "$work/state" record -o "$work/webapp.jsonl" --duration "$duration" --tree "$app" &
rec=$!
end=$(( $(date +%s) + duration ))
i=0
while [ "$(date +%s)" -lt "$end" ]; do
  case $((i % 4)) in
    0|2) path=/page ;;
    1) path=/data ;;
    3) path=/report ;;
  esac
  curl -s -o /dev/null "http://127.0.0.1:18280$path" || true
  i=$((i + 1))
  sleep 0.5
done
wait $rec
mkdir -p "$top/tests/corpus/workload"
gzip -9 -c "$work/webapp.jsonl" > "$top/tests/corpus/workload/webapp.jsonl.gz"
echo "recorded $(wc -l < "$work/webapp.jsonl") events in $duration s"
