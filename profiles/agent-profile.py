"""Turns the syscalls one agent learned of another (profiles/regenerate.sh) into the agent's
shipped profile, profiles/sensor-agent.profile.json. What no baseline learns is added here,
each with its reason. Usage: python3 agent-profile.py LEARNED.seccomp.json OUT.profile.json"""
import json
import sys
import time

learned = json.load(open(sys.argv[1]))["syscalls"][0]["names"]
profile = {
    "format": 1,
    "workload": "exe:/usr/bin/sensor@root",
    "baseline_version": 1,
    "generated": int(time.time()),
    # The agent runs nothing; the paths are where packages and the xtask build put it.
    "executables": ["/usr/bin/sensor", "/usr/local/bin/sensor"],
    # It reads /proc, /sys, BTF, configs, rules, executables (for hashes): everything.
    "read": ["/**"],
    "write": [
        "/var/lib/sensor/**",
        "/var/log/sensor/**",
        "/run/sensor/**",
        "/sys/fs/bpf/**",
        "/sys/kernel/tracing/**",
    ],
    "connect": [],
    "connect_ports": [],
    "bind_ports": [],
    # mount: tracefs when the host has not mounted it (not seen while learning here).
    "syscalls": sorted(set(learned) | {"mount"}),
    "seccomp_default": "errno",
    "capabilities": [
        "CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE", "CAP_SYS_RESOURCE", "CAP_KILL",
        "CAP_FOWNER", "CAP_CHOWN",
    ],
}
with open(sys.argv[2], "w") as f:
    json.dump(profile, f, indent=2)
    f.write("\n")
