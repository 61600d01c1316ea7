"""Validate a CycloneDX JSON SBOM against the official schema (strict: formats checked too).

Run by `cargo xtask sbom` / `cargo xtask supply-check` in target/supply/venv."""
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    data = f.read()
version = json.loads(data)["specVersion"]
schema = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}[version]
errors = JsonStrictValidator(schema).validate_str(data, all_errors=True)
if errors:
    for e in errors:
        where = "/".join(str(p) for p in e.data.absolute_path)
        print(f"{path}: {e.data.message} at /{where}", file=sys.stderr)
    sys.exit(1)
print(f"{path}: valid CycloneDX {version} (strict JSON schema)")
