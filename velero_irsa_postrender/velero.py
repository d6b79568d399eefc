"""Find what matters in a rendered Velero release: the server, its ServiceAccount, its buckets."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from velero_irsa_postrender.errors import ManifestError
from velero_irsa_postrender.stream import Document

AWS_PROVIDERS = ("aws", "velero.io/aws")
CREDENTIALS_VOLUME = "cloud-credentials"
CREDENTIALS_ENV = "AWS_SHARED_CREDENTIALS_FILE"


@dataclass(frozen=True)
class Bucket:
    """An object-storage location from a BackupStorageLocation of provider aws."""

    name: str
    prefix: str = ""
    region: str = ""


@dataclass
class VeleroServer:
    """The Deployment that runs ``velero server``, and the ServiceAccount it runs as."""

    deployment: dict[str, Any]
    namespace: str | None
    service_account: str
    service_account_document: Document | None = None
    service_account_object: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(_get(self.deployment, "metadata", "name") or "?")


def _get(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = _get(deployment, "spec", "template", "spec")
    return spec if isinstance(spec, dict) else {}


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    containers = pod_spec.get("containers")
    return [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []


def runs_velero_server(container: dict[str, Any]) -> bool:
    """True when the container's command line is ``velero server …``."""
    command = container.get("command") if isinstance(container.get("command"), list) else []
    args = container.get("args") if isinstance(container.get("args"), list) else []
    argv = [str(word) for word in [*command, *args]]
    if not command:
        return bool(argv) and argv[0] == "server"
    return len(argv) > 1 and posixpath.basename(argv[0]) == "velero" and argv[1] == "server"


def _server_container(deployment: dict[str, Any]) -> dict[str, Any] | None:
    for container in _containers(_pod_spec(deployment)):
        if runs_velero_server(container):
            return container
    return None


def _objects(documents: list[Document]):
    for document in documents:
        for body in document.objects:
            yield document, body


def find_server(documents: list[Document], allow_static_credentials: bool = False) -> VeleroServer:
    """The single Velero server Deployment and its ServiceAccount document, or a clear error.

    ``allow_static_credentials`` lets a caller that only reports (doctor) see such a server too.
    """
    servers = [
        body
        for _, body in _objects(documents)
        if body.get("kind") == "Deployment" and _server_container(body) is not None
    ]
    if not servers:
        raise ManifestError(
            "no Velero server in the manifests (no Deployment whose container runs `velero server`)",
            "post-render the vmware-tanzu/velero chart, or use `velero-irsa ensure-role` for other setups",
        )
    if len(servers) > 1:
        names = ", ".join(str(_get(body, "metadata", "name")) for body in servers)
        raise ManifestError(
            f"two or more Velero server Deployments in one release ({names})", "render one Velero release at a time"
        )

    deployment = servers[0]
    pod_spec = _pod_spec(deployment)
    namespace = _get(deployment, "metadata", "namespace")
    account = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") or "default"
    server = VeleroServer(deployment, str(namespace) if namespace else None, str(account))
    if not allow_static_credentials:
        _check_no_static_credentials(server)
    return server


def attach_service_account(server: VeleroServer, documents: list[Document]) -> None:
    """Find the ServiceAccount document the server runs as; fail if the release does not render it."""
    for document, body in _objects(documents):
        if body.get("kind") != "ServiceAccount" or _get(body, "metadata", "name") != server.service_account:
            continue
        namespace = _get(body, "metadata", "namespace")
        if namespace in (None, server.namespace):
            server.service_account_document, server.service_account_object = document, body
            return
    where = f" in namespace {server.namespace}" if server.namespace else ""
    raise ManifestError(
        f"the Velero server runs as ServiceAccount {server.service_account}{where}, "
        "which this release does not render (serviceAccount.server.create=false?)",
        "set serviceAccount.server.create=true, or annotate your own ServiceAccount with the ARN "
        "from `velero-irsa ensure-role`",
    )


def uses_static_credentials(server: VeleroServer) -> bool:
    """True when the server mounts a credentials file (``credentials.useSecret=true``)."""
    container = _server_container(server.deployment) or {}
    env = container.get("env") if isinstance(container.get("env"), list) else []
    env_names = {str(item.get("name")) for item in env if isinstance(item, dict)}
    volumes = _pod_spec(server.deployment).get("volumes")
    volume_names = {str(v.get("name")) for v in volumes if isinstance(v, dict)} if isinstance(volumes, list) else set()
    return CREDENTIALS_ENV in env_names or CREDENTIALS_VOLUME in volume_names


def _check_no_static_credentials(server: VeleroServer) -> None:
    """The AWS plugin prefers a mounted credentials file over IRSA, so one must not be there."""
    if uses_static_credentials(server):
        raise ManifestError(
            f"the Velero server mounts static AWS credentials ({CREDENTIALS_ENV} / {CREDENTIALS_VOLUME} "
            "volume), which the AWS plugin uses instead of IRSA",
            "set credentials.useSecret=false in the chart values",
        )


def find_buckets(documents: list[Document]) -> list[Bucket]:
    """Every bucket of a BackupStorageLocation whose provider is aws, in stream order."""
    buckets: list[Bucket] = []
    for _, body in _objects(documents):
        if body.get("kind") != "BackupStorageLocation":
            continue
        if str(_get(body, "spec", "provider")) not in AWS_PROVIDERS:
            continue
        name = _get(body, "spec", "objectStorage", "bucket")
        if not name:
            continue
        bucket = Bucket(
            name=str(name),
            prefix=str(_get(body, "spec", "objectStorage", "prefix") or "").strip("/"),
            region=str(_get(body, "spec", "config", "region") or ""),
        )
        if bucket not in buckets:
            buckets.append(bucket)
    return buckets
