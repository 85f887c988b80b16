"""Checks of deploy/ that no schema makes, plus compose.yaml against the compose-spec schema.

    .venv/bin/python deploy/tools/check_deploy.py COMPOSE_SPEC_JSON

- compose.yaml validates against the compose-spec JSON schema (the one compose-go embeds);
  depends_on targets exist, `service_healthy` ones have a healthcheck, `service_completed_
  successfully` ones are one-shot; named volumes are declared; every required `${VAR:?}` is
  written by deploy/init-secrets.sh.
- deploy/k8s: kustomization.yaml lists every manifest; Services, PDBs and HPAs select or target
  an existing Deployment; every referenced ConfigMap/Secret (and key) exists; every Deployment
  container has requests, limits, readiness and liveness probes, runs as non-root with a
  read-only root filesystem.
- deploy/otel-collector.yaml (compose's `tracing` profile): every pipeline names receivers,
  processors and exporters it defines; every *_OTLP_ENDPOINT default in compose.yaml names a
  compose service and the port the collector's OTLP/gRPC receiver listens on.
- Both: every LEARNFLOW_* variable set is a real setting (learnflow/settings.py,
  gateway/settings.py), so a typo cannot silently fall back to a default.
Needs PyYAML and jsonschema (in the project's dev environment). Exit 1 with one line per problem.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
problems: list[str] = []


def problem(where: str, text: str) -> None:
    problems.append(f"{where}: {text}")


def known_settings() -> set[str]:
    names = {"LEARNFLOW_STATE_DIR"}
    tree = ast.parse((ROOT / "learnflow" / "settings.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add("LEARNFLOW_" + item.target.id.upper())
    gateway = (ROOT / "gateway" / "settings.py").read_text()
    found = re.findall(r'(?:get|number)\("([A-Z_]+)"', gateway)
    names.update("LEARNFLOW_GATEWAY_" + n for n in found)
    return names


def check_env_names(where: str, names: list[str], known: set[str]) -> None:
    for name in names:
        if name.startswith("LEARNFLOW_") and name not in known:
            problem(where, f"{name} is not a LearnFlow setting")


# ---------------------------------------------------------------------------------- compose


def check_compose(schema_path: Path, known: set[str]) -> None:
    path = DEPLOY / "compose.yaml"
    where = "deploy/compose.yaml"
    text = path.read_text()
    doc = yaml.safe_load(text)
    schema = json.loads(schema_path.read_text())
    for error in jsonschema.Draft7Validator(schema).iter_errors(doc):
        location = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problem(where, f"compose-spec: at {location}: {error.message}")
    services: dict[str, Any] = doc.get("services", {})
    volumes = set((doc.get("volumes") or {}).keys())
    for name, service in services.items():
        here = f"{where} services.{name}"
        for target, spec in (service.get("depends_on") or {}).items():
            if target not in services:
                problem(here, f"depends_on {target}: no such service")
                continue
            condition = (spec or {}).get("condition", "service_started")
            other = services[target]
            if condition == "service_healthy" and not other.get("healthcheck"):
                problem(here, f"waits for {target} to be healthy, but it has no healthcheck")
            if condition == "service_completed_successfully" and other.get("restart") not in (
                None,
                "no",
            ):
                problem(here, f"waits for {target} to complete, but it restarts")
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/")) and source not in volumes:
                problem(here, f"volume {source} is not declared under volumes:")
            created_later = source.startswith("./secrets/")  # by init-secrets.sh
            if source.startswith("./") and not created_later and not (DEPLOY / source).exists():
                problem(here, f"bind mount {source} does not exist")
        environment = service.get("environment") or {}
        if str(service.get("image", "")).startswith("learnflow:") and isinstance(environment, dict):
            check_env_names(here, list(environment), known)
    written = set(re.findall(r"echo \"([A-Z_]+)=", (DEPLOY / "init-secrets.sh").read_text()))
    for variable in sorted(set(re.findall(r"\$\{([A-Z_]+):\?", text)) - written):
        problem(where, f"${{{variable}}} is required but deploy/init-secrets.sh does not write it")


# -------------------------------------------------------------------------------- collector


def check_collector() -> None:
    where = "deploy/otel-collector.yaml"
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    if "traces" not in pipelines:
        problem(where, "no traces pipeline")
    for name, pipeline in pipelines.items():
        for section in ("receivers", "processors", "exporters"):
            defined = set(config.get(section) or {})
            for component in pipeline.get(section) or []:
                if component not in defined:
                    problem(where, f"pipeline {name}: {component} is not defined in {section}")
    grpc = (((config.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("grpc")
    port = str((grpc or {}).get("endpoint", "0.0.0.0:4317")).rpartition(":")[2]

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose.get("services", {})
    for service_name, service in services.items():
        environment = service.get("environment") or {}
        if not isinstance(environment, dict):
            continue
        for variable, value in environment.items():
            if not variable.endswith("OTLP_ENDPOINT"):
                continue
            here = f"deploy/compose.yaml services.{service_name} {variable}"
            default = re.fullmatch(r"\$\{[A-Z_]+:-(.*)\}", str(value))
            endpoint = default.group(1) if default else str(value)
            host, _, endpoint_port = endpoint.split("://")[-1].rpartition(":")
            if host not in services:
                problem(here, f"{endpoint}: no compose service {host}")
            elif endpoint_port != port:
                problem(here, f"{endpoint}: the collector's OTLP/gRPC receiver is on port {port}")


# ------------------------------------------------------------------------------- kubernetes


def check_kubernetes(known: set[str]) -> None:
    k8s = DEPLOY / "k8s"
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    present = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
    for missing in sorted(present - listed):
        problem("deploy/k8s/kustomization.yaml", f"{missing} is not listed in resources")
    for extra in sorted(listed - present):
        problem("deploy/k8s/kustomization.yaml", f"{extra} is listed but does not exist")

    objects: list[tuple[str, dict[str, Any]]] = []
    for file in sorted(present):
        for doc in yaml.safe_load_all((k8s / file).read_text()):
            if doc:
                objects.append((file, doc))

    def named(kind: str) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for _, d in objects if d["kind"] == kind}

    deployments, configmaps, secrets = named("Deployment"), named("ConfigMap"), named("Secret")
    secret_keys = {
        n: set((s.get("stringData") or {}) | (s.get("data") or {})) for n, s in secrets.items()
    }
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels.values())

    for file, doc in objects:
        kind, name = doc["kind"], doc["metadata"]["name"]
        where = f"deploy/k8s/{file} {kind}/{name}"
        if kind != "Namespace" and doc["metadata"].get("namespace") != "learnflow":
            problem(where, "not in namespace learnflow")
        if kind == "Service" and not selects(doc["spec"]["selector"]):
            problem(where, "selects no Deployment's pods")
        if kind == "PodDisruptionBudget" and not selects(doc["spec"]["selector"]["matchLabels"]):
            problem(where, "selects no Deployment's pods")
        if kind == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]
            if target["kind"] != "Deployment" or target["name"] not in deployments:
                problem(where, f"scales {target['kind']}/{target['name']}, which does not exist")
        if kind in ("Deployment", "Job"):
            check_pod(where, kind, doc["spec"]["template"]["spec"], configmaps, secret_keys, known)

    headless = [n for n, s in named("Service").items() if s["spec"].get("clusterIP") == "None"]
    targets = [c["data"].get("LEARNFLOW_GATEWAY_GRPC_TARGET", "") for c in configmaps.values()]
    for name in headless:
        if not any(t.startswith(f"dns:///{name}.") for t in targets):
            problem("deploy/k8s", f"no gateway targets the headless Service {name} with dns:///")


def check_pod(
    where: str,
    kind: str,
    pod: dict[str, Any],
    configmaps: dict[str, Any],
    secret_keys: dict[str, set[str]],
    known: set[str],
) -> None:
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problem(where, "pod securityContext.runAsNonRoot is not true")
    for volume in pod.get("volumes", []):
        secret = volume.get("secret")
        if secret and secret["secretName"] not in secret_keys:
            problem(where, f"volume {volume['name']}: no Secret {secret['secretName']}")
    for container in pod["containers"]:
        here = f"{where} container {container['name']}"
        resources = container.get("resources", {})
        if not resources.get("requests") or not resources.get("limits"):
            problem(here, "needs resource requests and limits")
        if kind == "Deployment":
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problem(here, f"has no {probe}")
        if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problem(here, "root filesystem is writable")
        names = []
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            if ref is not None:
                if ref not in configmaps:
                    problem(here, f"envFrom: no ConfigMap {ref}")
                else:
                    names.extend(configmaps[ref].get("data", {}))
        for variable in container.get("env", []):
            names.append(variable["name"])
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secret_keys.get(ref["name"], set()):
                problem(here, f"{variable['name']}: no key {ref['key']} in Secret {ref['name']}")
        check_env_names(here, names, known)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    known = known_settings()
    check_compose(Path(sys.argv[1]), known)
    check_collector()
    check_kubernetes(known)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(
        "deploy/: compose.yaml, otel-collector.yaml and deploy/k8s consistent"
        " (schema, references, settings)"
    )


if __name__ == "__main__":
    main()
