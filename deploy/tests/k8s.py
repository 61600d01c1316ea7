#!/usr/bin/env python3
"""Kubernetes artifacts, offline: the plain manifest against the API schemas (strict), the
agent's own checks of the config and rules it carries, and the Helm chart through Helm's lint
(real Helm, from the helm-sdkpy wheel's libhelm; no `helm template` is available here).

Usage: k8s.py KUBERNETES_VALIDATE SENSOR_BIN LIBHELM_OR_EMPTY
"""
import ctypes
import pathlib
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy/k8s/sensor.yaml"
CHART = ROOT / "deploy/helm/sensor"
validate, sensor, libhelm = sys.argv[1], sys.argv[2], sys.argv[3]
failed = 0


def report(ok, name, detail=""):
    global failed
    print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""))
    failed += 0 if ok else 1


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


rc, out = run(validate, "--strict", "--quiet", str(MANIFEST))
report(rc == 0, "deploy/k8s/sensor.yaml validates (kubernetes-validate --strict)", out)

# The validator must catch a misspelled field, or the PASS above means nothing.
text = MANIFEST.read_text()
with tempfile.NamedTemporaryFile("w", suffix=".yaml") as bad:
    bad.write(text.replace("hostPID: true", "hostPid: true"))
    bad.flush()
    rc, _ = run(validate, "--strict", "--quiet", bad.name)
report(rc != 0, "strict validation rejects a misspelled field (hostPid)")

docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}
ds = docs[("DaemonSet", "sensor")]["spec"]["template"]["spec"]
c = ds["containers"][0]
env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
mounts = {m["mountPath"] for m in c["volumeMounts"]}
report(
    ds.get("hostPID") is True
    and {"operator": "Exists"} in ds["tolerations"]
    and env.get("SENSOR_NODE_NAME") == "spec.nodeName"
    and env.get("SENSOR_POD_NAME") == "metadata.name"
    and env.get("SENSOR_POD_NAMESPACE") == "metadata.namespace"
    and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    and {"/sys/kernel/btf", "/sys/fs/bpf", "/sys/fs/cgroup", "/sys/kernel/tracing", "/var/lib/sensor"} <= mounts
    and "limits" in c["resources"] and "requests" in c["resources"],
    "DaemonSet: hostPID, tolerate all, downward-API identity, /healthz and /readyz probes, kernel mounts, limits",
)

# The config and rules in the ConfigMaps are what the agent accepts, and derive from the
# packaged config (only the listener differs), and the chart carries the same files.
cfg = docs[("ConfigMap", "sensor-config")]["data"]["sensor.toml"]
rules = docs[("ConfigMap", "sensor-rules")]["data"]["site.yaml"]
with tempfile.TemporaryDirectory() as d:
    p = pathlib.Path(d)
    (p / "rules.d").mkdir()
    (p / "rules.d/site.yaml").write_text(rules)
    (p / "sensor.toml").write_text(cfg.replace('"/etc/sensor/rules.d"', f'"{p}/rules.d"'))
    rc, out = run(sensor, "config", "check", "--config", str(p / "sensor.toml"))
    report(rc == 0, "ConfigMap sensor.toml passes `sensor config check`", out)
    rc, out = run(sensor, "rules", "check", str(p / "rules.d/site.yaml"))
    report(rc == 0, "ConfigMap rules pass `sensor rules check` (inline tests included)", out)
packaged = (ROOT / "deploy/config/sensor.toml").read_text()
body = lambda s: s.split("\n[probes]", 1)[1]
report(
    body(cfg) == body(packaged).replace('listen = "127.0.0.1:9464"', 'listen = "0.0.0.0:9464"'),
    "ConfigMap config = packaged config with the listener on the pod address",
)
report(
    (CHART / "files/sensor.toml").read_text() == cfg and (CHART / "files/site.yaml").read_text() == rules,
    "Helm chart files/ = the plain manifest's ConfigMaps",
)

if not libhelm:
    print("SKIP helm lint: libhelm (helm-sdkpy wheel) not installed; run `cargo xtask deploy-test` setup")
else:
    lib = ctypes.CDLL(libhelm)
    lib.helm_sdkpy_last_error.restype = ctypes.c_void_p
    handle, out = ctypes.c_uint64(), ctypes.c_void_p()
    rc = lib.helm_sdkpy_config_create(b"sensor-system", b"", b"", b"{}", ctypes.byref(handle))
    rc = rc or lib.helm_sdkpy_lint(handle, str(CHART).encode(), ctypes.byref(out))
    result = __import__("json").loads(ctypes.string_at(out.value)) if rc == 0 and out.value else {}
    # Severity: 1 info, 2 warning, 3 error. Lint renders every template with the default
    # values and checks the output is well-formed Kubernetes YAML.
    bad = [m for m in result.get("Messages", []) if m["Severity"] >= 2]
    report(rc == 0 and not result.get("Errors") and not bad, "helm lint deploy/helm/sensor (Helm library, default values)", str(bad or rc))
print("SKIP helm template | kubernetes-validate: no helm binary obtainable offline here (apt has none, "
      "PyPI/npm ship only the library); the chart is linted, the plain manifest is validated")
sys.exit(1 if failed else 0)
