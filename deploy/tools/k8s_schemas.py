"""Kubernetes JSON schemas for kubeconform, offline, from the `kubernetes-validate` wheel (PyPI).

kubeconform fetches its schemas from GitHub by default. The `kubernetes-validate` package ships
the same generated schemas for each Kubernetes minor version, but in a "local" layout whose
`$ref`s point into one shared `/api/_definitions.json`, which kubeconform cannot resolve. This
writes the "standalone-strict" layout kubeconform expects instead: one file per kind, every
definition it reaches inlined under its own `$defs`.

    python3 k8s_schemas.py WHEEL OUT_DIR 1.30.0 [1.34.0 ...]
    kubeconform -strict -kubernetes-version 1.30.0 -schema-location OUT_DIR ...
"""

from __future__ import annotations

import copy
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

PREFIXES = ("/api/_definitions.json#/$defs/", "_definitions.json#/$defs/", "#/$defs/")


def _inline(node: Any, definitions: dict[str, Any], needed: dict[str, Any]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        ref = item.get("$ref")
        if isinstance(ref, str):
            for prefix in PREFIXES:
                if ref.startswith(prefix):
                    name = ref[len(prefix) :]
                    item["$ref"] = "#/$defs/" + name
                    if name not in needed:
                        needed[name] = copy.deepcopy(definitions[name])
                        stack.append(needed[name])
                    break
        stack.extend(value for key, value in item.items() if key != "$ref")


def convert(wheel: Path, out: Path, version: str) -> int:
    base = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
    target = out / f"v{version}-standalone-strict"
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.startswith(base) and n.endswith(".json")]
        if not names:
            raise SystemExit(f"{wheel.name} has no schemas for Kubernetes {version}")
        definitions = json.loads(archive.read(base + "_definitions.json"))["$defs"]
        count = 0
        for name in names:
            filename = name[len(base) :]
            if filename in ("_definitions.json", "all.json"):
                continue
            schema = json.loads(archive.read(name))
            needed: dict[str, Any] = {}
            _inline(schema, definitions, needed)
            if needed:
                schema["$defs"] = needed
            (target / filename).write_text(json.dumps(schema, separators=(",", ":")))
            count += 1
    return count


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    wheel, out, versions = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    for version in versions:
        print(f"kubernetes {version}: {convert(wheel, out, version)} schemas in {out}")


if __name__ == "__main__":
    main()
