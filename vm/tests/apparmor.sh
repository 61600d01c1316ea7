#!/bin/sh
# In the VM (AppArmor is in that kernel): a profile rendered by `sensor profile render` from a
# sensor profile loads into the kernel and is enforced on a program (an allowed read works, a
# read outside the profile is denied); the same profile in complain mode denies nothing and
# logs. Usage: apparmor.sh SENSOR_BIN
set -eu
sensor=$1
work=/tmp/aa
mkdir -p $work/prog $work/out
# The confined program: a copy of cat under its own path.
cp /bin/busybox $work/prog/cat-copy 2>/dev/null || cp "$(command -v cat)" $work/prog/cat-copy
ln -sf cat-copy $work/prog/cat
echo allowed > $work/allowed.txt
echo secret > $work/secret.txt
cat > $work/p.profile.json <<JSON
{"format": 1, "workload": "exe:$work/prog/cat-copy@root", "baseline_version": 1,
 "generated": 0, "executables": ["$work/prog/cat-copy"], "read": ["$work/allowed.txt"],
 "write": [], "connect": [], "connect_ports": [], "bind_ports": [], "syscalls": ["read"],
 "seccomp_default": "errno", "capabilities": []}
JSON
"$sensor" profile check $work/p.profile.json
"$sensor" profile render $work/p.profile.json --format apparmor --out $work/out
profile=$(ls $work/out/*.apparmor)
cat "$profile"
apparmor_parser -r "$profile"
grep -q "sensor-exe__tmp_aa_prog_cat-copy_root (enforce)" /sys/kernel/security/apparmor/profiles
# busybox picks its applet from argv[0]: call it as cat.
run() { (exec -a cat $work/prog/cat-copy "$@"); }
[ "$(run $work/allowed.txt)" = allowed ] || { echo "allowed read failed"; exit 1; }
if run $work/secret.txt 2>/dev/null; then echo "read outside the profile was not denied"; exit 1; fi
echo "enforce: allowed read ok, other read denied"
"$sensor" profile render $work/p.profile.json --format apparmor --complain --out $work/out
apparmor_parser -r "$profile"
grep -q "sensor-exe__tmp_aa_prog_cat-copy_root (complain)" /sys/kernel/security/apparmor/profiles
[ "$(run $work/secret.txt)" = secret ] || { echo "complain mode denied"; exit 1; }
dmesg | grep -q 'apparmor="ALLOWED".*secret.txt' || { echo "complain mode did not log"; exit 1; }
echo "complain: read allowed and logged"
