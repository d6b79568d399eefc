"""The baseline the large-stream benchmark beats: a post-renderer written the obvious way.

It loads every document with PyYAML's ``safe_load_all``, annotates the Velero server's
ServiceAccount and writes everything back with ``safe_dump_all``. Usage:
``python benchmarks/naive.py --role-arn ARN < manifests > out``.
"""

from __future__ import annotations

import sys

import yaml


def main(argv: list[str]) -> int:
    role_arn = argv[argv.index("--role-arn") + 1]
    documents = [d for d in yaml.safe_load_all(sys.stdin.buffer.read()) if isinstance(d, dict)]
    account = next(_server_account(d) for d in documents if _server_account(d))
    for document in documents:
        if document.get("kind") == "ServiceAccount" and document.get("metadata", {}).get("name") == account:
            metadata = document["metadata"]
            metadata["annotations"] = {**(metadata.get("annotations") or {}), "eks.amazonaws.com/role-arn": role_arn}
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False))
    return 0


def _server_account(document: dict) -> str | None:
    if document.get("kind") != "Deployment":
        return None
    pod = (document.get("spec") or {}).get("template", {}).get("spec") or {}
    for container in pod.get("containers") or []:
        if "server" in [*(container.get("command") or []), *(container.get("args") or [])][:2]:
            return pod.get("serviceAccountName") or "default"
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
