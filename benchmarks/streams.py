"""Benchmark input: the real Velero fixtures, and large generated streams with one Velero release inside.

A large stream is what a big umbrella chart renders: mostly ConfigMaps (dashboards as JSON, with
escaped quotes), Secrets, Services, RBAC, some Deployments and ServiceAccounts of other apps, and
in the middle of it the real Velero 12.1.0 release. Generation is deterministic (seeded), so every
run and every machine measures the same bytes.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("VELERO_IRSA_SHARED", REPO.parent / "shared")) / "fixtures" / "velero-12.1.0"
RELEASE_FIXTURE = "template-irsa.yaml"
MB = 1_000_000

# Per 100 generated documents: (how many, what). Only Deployments, ServiceAccounts and the
# RoleBindings that name a ServiceAccount are worth a YAML parse.
MIX = (
    (55, "configmap"),
    (12, "secret"),
    (10, "service"),
    (8, "deployment"),
    (5, "serviceaccount"),
    (5, "rolebinding"),
    (5, "role"),
)


def fixture(name: str = RELEASE_FIXTURE) -> bytes:
    return (FIXTURES / name).read_bytes()


def large_stream(size_mb: float, documents: int, seed: int = 5) -> bytes:
    """About ``size_mb`` MB in exactly ``documents`` documents, the Velero release in the middle."""
    release = fixture()
    release_documents = len(re.findall(rb"^---", release, re.MULTILINE))
    generated = documents - release_documents
    if generated < 2:
        raise ValueError(f"{documents} documents cannot hold the {release_documents}-document Velero release")

    rng = random.Random(seed)
    kinds = [kind for count, kind in MIX for _ in range(count)]
    budget = int(size_mb * MB) - len(release)
    parts: list[bytes] = []
    for index in range(generated):
        if index == generated // 2:
            parts.append(release)
        target = max(300, budget // (generated - index))
        size = rng.randint(target * 3 // 4, target * 5 // 4) if index < generated - 1 else target
        document = _BUILDERS[kinds[index % len(kinds)]](index, size, rng)
        budget -= len(document)
        parts.append(document)
    return b"".join(parts)


def _header(index: int, kind: str, api: str, template: str, namespaced: bool = True) -> list[str]:
    lines = [
        "---",
        f"# Source: platform/charts/app-{index % 97}/templates/{template}.yaml",
        f"apiVersion: {api}",
        f"kind: {kind}",
        "metadata:",
        f"  name: app-{index}",
    ]
    if namespaced:
        lines.append(f"  namespace: team-{index % 13}")
    lines += [
        "  labels:",
        f"    app.kubernetes.io/name: app-{index % 97}",
        "    app.kubernetes.io/instance: platform",
        "    app.kubernetes.io/managed-by: Helm",
        "    helm.sh/chart: platform-3.4.1",
    ]
    return lines


def _finish(lines: list[str], size: int, pad: Callable[[int], list[str]]) -> bytes:
    text = "\n".join(lines) + "\n"
    missing = size - len(text)
    if missing > 0:
        text += "\n".join(pad(missing)) + "\n"
    return text.encode()


def _nothing(missing: int) -> list[str]:
    return []


def _words(rng: random.Random, length: int) -> str:
    return format(rng.getrandbits(length * 4), f"0{length}x")


def _configmap(index: int, size: int, rng: random.Random) -> bytes:
    lines = [*_header(index, "ConfigMap", "v1", "dashboard-configmap"), "data:", "  dashboard.json: |", "    {"]
    escaped = index % 2 == 0

    def panels(missing: int) -> list[str]:
        out = []
        panel = 0
        while missing > 0:
            query = f'rate(http_requests_total{{job=\\"app-{index}\\"}}[5m])' if escaped else "up"
            line = f'      "panel_{panel}": {{"title": "{_words(rng, 12)}", "expr": "{query}"}},'
            out.append(line)
            missing -= len(line) + 1
            panel += 1
        out.append('      "end": true')
        out.append("    }")
        return out

    return _finish(lines, size, panels)


def _secret(index: int, size: int, rng: random.Random) -> bytes:
    lines = [*_header(index, "Secret", "v1", "secret"), "type: Opaque", "data:"]

    def keys(missing: int) -> list[str]:
        out = []
        key = 0
        while missing > 0:
            line = f"  key-{key}: {_words(rng, 76)}="
            out.append(line)
            missing -= len(line) + 1
            key += 1
        return out

    return _finish(lines, size, keys)


def _annotations_pad(missing: int, rng: random.Random) -> list[str]:
    if missing <= 0:
        return []
    out = ["  annotations:"]
    note = 0
    while missing > 0:
        line = f"    example.com/note-{note}: {_words(rng, 60)}"
        out.append(line)
        missing -= len(line) + 1
        note += 1
    return out


def _service(index: int, size: int, rng: random.Random) -> bytes:
    lines = _header(index, "Service", "v1", "service")
    body = ["spec:", "  type: ClusterIP", "  ports:", "    - name: http", "      port: 80", "      targetPort: http"]
    pad = _annotations_pad(size - len("\n".join(lines + body)) - 40, rng)
    return _finish([*lines, *pad, *body], size, _nothing)


def _deployment(index: int, size: int, rng: random.Random) -> bytes:
    lines = _header(index, "Deployment", "apps/v1", "deployment")
    command = "/app/api-server" if index % 3 == 0 else "/app/worker"
    body = [
        "spec:",
        "  replicas: 2",
        "  selector:",
        "    matchLabels:",
        f"      app.kubernetes.io/name: app-{index % 97}",
        "  template:",
        "    spec:",
        f"      serviceAccountName: app-{index}",
        "      containers:",
        "        - name: app",
        f"          image: registry.example.com/app-{index % 97}:1.{index % 10}.0",
        f"          command: [{command}]",
        "          args:",
        "            - --port=8080",
    ]
    pad = _annotations_pad(size - len("\n".join(lines + body)) - 40, rng)
    return _finish([*lines, *pad, *body], size, _nothing)


def _serviceaccount(index: int, size: int, rng: random.Random) -> bytes:
    lines = _header(index, "ServiceAccount", "v1", "serviceaccount")
    return _finish(lines, size, lambda missing: _annotations_pad(missing, rng))


def _rolebinding(index: int, size: int, rng: random.Random) -> bytes:
    lines = _header(index, "RoleBinding", "rbac.authorization.k8s.io/v1", "rolebinding")
    body = [
        "subjects:",
        "  - kind: ServiceAccount",
        f"    name: app-{index}",
        f"    namespace: team-{index % 13}",
        "roleRef:",
        "  kind: Role",
        f"  name: app-{index}",
        "  apiGroup: rbac.authorization.k8s.io",
    ]
    pad = _annotations_pad(size - len("\n".join(lines + body)) - 40, rng)
    return _finish([*lines, *pad, *body], size, _nothing)


def _role(index: int, size: int, rng: random.Random) -> bytes:
    lines = [*_header(index, "Role", "rbac.authorization.k8s.io/v1", "role"), "rules:"]

    def rules(missing: int) -> list[str]:
        out = []
        while missing > 0:
            rule = [
                '  - apiGroups: [""]',
                f"    resources: [configmaps, {_words(rng, 10)}]",
                "    verbs: [get, list, watch]",
            ]
            out += rule
            missing -= sum(len(line) + 1 for line in rule)
        return out

    return _finish(lines, size, rules)


_BUILDERS: dict[str, Callable[[int, int, random.Random], bytes]] = {
    "configmap": _configmap,
    "secret": _secret,
    "service": _service,
    "deployment": _deployment,
    "serviceaccount": _serviceaccount,
    "rolebinding": _rolebinding,
    "role": _role,
}
