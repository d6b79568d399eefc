"""``velero-irsa doctor``: check, live, that the rendered Velero, its ServiceAccount and its role fit.

Each check is one row: ✔ it holds, ✘ it does not (with the fix), - it could not be checked
(an earlier row failed, or no manifests were given to check against). Doctor only reads: it
makes no write call, so it is safe to run in CI against production.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from velero_irsa_postrender import iam_reads, podidentity, policy, stream
from velero_irsa_postrender.aws import Clients, explained, is_code, translated
from velero_irsa_postrender.ensure import Target, choose_buckets, clients_for, role_request, target_from_settings
from velero_irsa_postrender.errors import ConfigError, ManifestError, VeleroIrsaError
from velero_irsa_postrender.identity import Cluster, resolve_clusters
from velero_irsa_postrender.inject import ROLE_ARN_ANNOTATION, current_annotation
from velero_irsa_postrender.role import RoleRequest, owned
from velero_irsa_postrender.settings import Settings, validate_role_arn
from velero_irsa_postrender.velero import (
    Bucket,
    VeleroServer,
    attach_service_account,
    find_buckets,
    find_server,
    uses_static_credentials,
)

log = logging.getLogger(__name__)

OK, FAIL, SKIP = "ok", "fail", "skip"
MARKS = {OK: "✔", FAIL: "✘", SKIP: "-"}
NO_MANIFESTS = "no manifests given: pipe `helm get manifest <release> -n <namespace>` in, or pass --manifest FILE"


@dataclass
class Check:
    """One row of the report."""

    check: str
    status: str
    detail: str
    fix: str = ""
    target: str = ""

    @property
    def label(self) -> str:
        return f"{self.check} {self.target}".strip()


@dataclass
class Rendered:
    """What the manifests say, when there are any."""

    server: VeleroServer
    buckets: list[Bucket]
    service_account_error: ManifestError | None = None


@dataclass
class Live:
    """What AWS says, filled in as the checks go; None where a check could not get that far."""

    clusters: list[Cluster] | None = None
    request: RoleRequest | None = None
    role: dict[str, Any] | None = None
    policy_document: Any = None


def manifest_input(path: str | None, stdin: Any) -> bytes | None:
    """The manifests to check: the file, ``-`` for stdin, or stdin when it is not a terminal."""
    if path in (None, "-"):
        interactive = stdin is None or stdin.isatty()
        return None if path is None and interactive else stdin.buffer.read()
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ManifestError(f"cannot read {path} ({error.strerror})", "check the path given with --manifest") from None


def read_manifests(manifests: bytes, settings: Settings) -> Rendered:
    """The server, its ServiceAccount and buckets; static credentials are reported, not refused."""
    documents = stream.split(manifests)
    if all(stream.is_blank(document) for document in documents):
        raise ManifestError("the manifest stream is empty", "pipe a rendered Velero release in, or drop --manifest")
    stream.parse_candidates(documents)
    server = find_server(documents, allow_static_credentials=True)
    if not server.namespace:
        server.namespace = target_from_settings(settings, os.environ.get("HELM_NAMESPACE")).namespace
    rendered = Rendered(server, find_buckets(documents))
    try:
        attach_service_account(server, documents)
    except ManifestError as error:
        rendered.service_account_error = error
    return rendered


def diagnose(settings: Settings, manifests: bytes | None) -> list[Check]:
    """Every check, in the order a reader follows the chain from cluster to ServiceAccount."""
    if not settings.clusters:
        raise ConfigError("doctor needs the EKS cluster", "pass --cluster NAME (or set VELERO_IRSA_CLUSTER)")
    rendered = read_manifests(manifests, settings) if manifests and manifests.strip() else None
    target = _target(settings, rendered)
    buckets = choose_buckets(settings, rendered.buckets if rendered else [])
    clients = clients_for(settings, buckets)
    doctor = Doctor(settings, target, buckets, clients, rendered)
    return list(doctor.run())


def _target(settings: Settings, rendered: Rendered | None) -> Target:
    if rendered is None:
        return target_from_settings(settings, os.environ.get("HELM_NAMESPACE"))
    server = rendered.server
    return Target(str(server.namespace), server.service_account, rendered.buckets)


class Doctor:
    """Runs the checks; each AWS failure becomes a ✘ row rather than ending the run."""

    def __init__(
        self, settings: Settings, target: Target, buckets: list[Bucket], clients: Clients, rendered: Rendered | None
    ) -> None:
        self.settings, self.target, self.buckets, self.clients = settings, target, buckets, clients
        self.rendered = rendered
        self.live = Live()
        self.pod_identity = settings.mode == policy.POD_IDENTITY

    def run(self) -> Iterator[Check]:
        yield from self.clusters()
        if not self.pod_identity:
            yield from self.oidc_providers()
        yield self.guard("role", self.role)
        yield self.guard("trust", self.trust)
        yield self.guard("policy", self.policy)
        for bucket in self.buckets:
            yield self.guard("bucket", lambda bucket=bucket: self.bucket(bucket), bucket.name)
        if self.pod_identity:
            for name in self.settings.clusters:
                yield self.guard("association", lambda name=name: self.association(name), name)
        yield self.credentials()
        yield self.token()
        yield self.annotation()
        if self.pod_identity:
            yield self.plugin()

    def guard(self, name: str, check: Callable[[], Check], target: str = "") -> Check:
        try:
            with explained(f"check {name}"):  # an AWS code nobody branched on is a ✘ row, not an abort
                row = check()
        except VeleroIrsaError as error:
            row = Check(name, FAIL, error.message, error.hint)
        row.target = row.target or target
        return row

    @property
    def fix_command(self) -> str:
        words = ["velero-irsa", "ensure-role"]
        for cluster in self.settings.clusters:
            words += ["--cluster", cluster]
        words += ["--namespace", self.target.namespace, "--service-account", self.target.service_account]
        for bucket in self.buckets:
            words += ["--bucket", bucket.name]
        if self.settings.role_name:
            words += ["--role-name", self.settings.role_name]
        if self.pod_identity:
            words += ["--mode", policy.POD_IDENTITY]
        return shlex.join(words)

    # -- AWS ---------------------------------------------------------------------------------

    def clusters(self) -> Iterator[Check]:
        try:
            clusters = resolve_clusters(self.settings, self.clients)
        except VeleroIrsaError as error:
            yield Check("cluster", FAIL, error.message, error.hint, " ".join(self.settings.clusters))
            return
        self.live.clusters = clusters
        self.live.request = role_request(self.settings, self.target, clusters, self.buckets)
        for cluster in clusters:
            yield Check("cluster", OK, f"OIDC issuer {policy.issuer_host_path(cluster.issuer)}", target=cluster.name)

    def oidc_providers(self) -> Iterator[Check]:
        for cluster in self.live.clusters or []:
            yield self.guard("oidc-provider", lambda cluster=cluster: self.oidc_provider(cluster), cluster.name)

    def oidc_provider(self, cluster: Cluster) -> Check:
        arn = cluster.provider_arn
        try:
            with translated("read the IAM OIDC provider", "iam:GetOpenIDConnectProvider"):
                found = self.clients.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        except Exception as error:
            if not is_code(error, "NoSuchEntity"):
                raise
            return Check(
                "oidc-provider",
                FAIL,
                f"IAM has no OIDC provider for {policy.issuer_host_path(cluster.issuer)}",
                f"eksctl utils associate-iam-oidc-provider --cluster {cluster.name} --approve "
                f"(or {self.fix_command} --create-oidc-provider)",
            )
        if policy.AUDIENCE not in found.get("ClientIDList", []):
            return Check(
                "oidc-provider",
                FAIL,
                f"the IAM OIDC provider does not list the audience {policy.AUDIENCE}",
                f"aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {arn} "
                f"--client-id {policy.AUDIENCE}",
            )
        return Check("oidc-provider", OK, f"exists, audience {policy.AUDIENCE}")

    def role(self) -> Check:
        request = self.live.request
        if request is None:
            return Check("role", SKIP, "needs the cluster")
        name = self._role_name(request)
        self.live.role = self._get_role(name)
        if self.live.role is None:
            return Check("role", FAIL, f"role {name} does not exist", self.fix_command)
        if self.settings.role_arn:
            return Check("role", OK, f"{name} exists (given with --role-arn)")
        if not owned(self.live.role.get("Tags")):
            return Check(
                "role",
                FAIL,
                f"{name} exists but is not managed by velero-irsa",
                f"{self.fix_command} --adopt to let velero-irsa manage it (or pass --role-arn to use it as it is)",
            )
        return Check("role", OK, f"{name} exists and is managed by velero-irsa")

    def _role_name(self, request: RoleRequest) -> str:
        return self.settings.role_arn.rsplit("/", 1)[-1] if self.settings.role_arn else request.role_name

    def _get_role(self, name: str) -> dict[str, Any] | None:
        return iam_reads.get_role(self.clients.iam, name)

    def trust(self) -> Check:
        role, request = self.live.role, self.live.request
        if role is None or request is None:
            return Check("trust", SKIP, "needs the role")
        document = role["AssumeRolePolicyDocument"]
        if self.pod_identity:
            if not policy.admits_pod_identity(document):
                return Check(
                    "trust",
                    FAIL,
                    f"does not let {policy.POD_IDENTITY_SERVICE} call {' and '.join(policy.POD_IDENTITY_ACTIONS)}",
                    self.fix_command,
                )
            return Check("trust", OK, f"admits {policy.POD_IDENTITY_SERVICE}")
        for cluster in request.clusters:
            if not policy.admits(
                document, cluster.provider_arn, cluster.issuer, request.namespace, request.service_account
            ):
                return Check(
                    "trust",
                    FAIL,
                    f"does not admit exactly {request.subject} (aud {policy.AUDIENCE}) from cluster {cluster.name}",
                    self.fix_command,
                )
        if owned(role.get("Tags")) and not policy.same_document(document, request.trust_policy()):
            return Check(
                "trust",
                FAIL,
                "admits more than these clusters' subject (another cluster, or edited by hand?)",
                f"pass every --cluster the role serves, or rewrite the trust with {self.fix_command}",
            )
        return Check("trust", OK, f"admits exactly {request.subject} with aud {policy.AUDIENCE}")

    def policy(self) -> Check:
        request = self.live.request
        if request is None:
            return Check("policy", SKIP, "needs the cluster")
        arn = request.policy_arn
        self.live.policy_document = self._policy_document(arn)
        if self.live.policy_document is None:
            return Check("policy", FAIL, f"policy {arn} does not exist", self.fix_command)
        if self.live.role is None:
            return Check("policy", SKIP, "needs the role")
        if arn not in self._attached(self.live.role["RoleName"]):
            return Check(
                "policy", FAIL, f"{arn} is not attached to role {self.live.role['RoleName']}", self.fix_command
            )
        if not policy.same_document(self.live.policy_document, request.permission_policy()):
            return Check(
                "policy", FAIL, "the document differs from what Velero needs for these buckets", self.fix_command
            )
        return Check("policy", OK, f"{request.policy_name} attached and current")

    def _policy_document(self, arn: str) -> Any:
        found = iam_reads.get_policy_with_document(self.clients.iam, arn)
        return None if found is None else found["Document"]

    def _attached(self, role_name: str) -> list[str]:
        return iam_reads.attached_policy_arns(self.clients.iam, role_name)

    def bucket(self, bucket: Bucket) -> Check:
        try:
            with translated(f"check bucket {bucket.name}", "s3:ListBucket"):
                self.clients.s3.head_bucket(Bucket=bucket.name)
        except Exception as error:
            if not is_code(error, "404", "NoSuchBucket", "NotFound"):
                raise
            return Check(
                "bucket",
                FAIL,
                "does not exist",
                "create it, fix the BackupStorageLocation / --bucket, or run ensure-role with --create-bucket",
            )
        request, document = self.live.request, self.live.policy_document
        if request is None or document is None:
            return Check("bucket", OK, "exists (the policy could not be read to see that it covers it)")
        if not _covers(document, request.partition, bucket):
            return Check("bucket", FAIL, f"exists but {request.policy_name} does not cover it", self.fix_command)
        return Check("bucket", OK, "exists and the policy covers it")

    def association(self, cluster: str) -> Check:
        if self.live.clusters is None:
            return Check("association", SKIP, "needs the cluster")
        role_arn = self._role_arn()
        target = podidentity.describe_target(cluster, self.target.namespace, self.target.service_account)
        found = podidentity.find(self.clients, cluster, self.target.namespace, self.target.service_account)
        if found is None:
            return Check("association", FAIL, f"no {target}", self.fix_command)
        if role_arn and found.role_arn != role_arn:
            return Check("association", FAIL, f"names {found.role_arn}, not {role_arn}", self.fix_command)
        return Check("association", OK, f"gives {self.target.namespace}/{self.target.service_account} the role")

    def _role_arn(self) -> str | None:
        if self.settings.role_arn:
            return self.settings.role_arn
        if self.live.role is not None:
            return str(self.live.role["Arn"])
        return self.live.request.role_arn if self.live.request else None

    # -- the manifests -----------------------------------------------------------------------

    def credentials(self) -> Check:
        if self.rendered is None:
            return Check("credentials", SKIP, NO_MANIFESTS)
        if uses_static_credentials(self.rendered.server):
            return Check(
                "credentials",
                FAIL,
                "the server mounts static AWS credentials, which the AWS plugin prefers over the role",
                "set credentials.useSecret=false in the chart values",
            )
        return Check("credentials", OK, "credentials.useSecret is off")

    def token(self) -> Check:
        if self.rendered is None:
            return Check("token", SKIP, NO_MANIFESTS)
        return Check("token", OK, f"readable: {token_access(self.rendered.server.deployment)}")

    def annotation(self) -> Check:
        if self.rendered is None:
            return Check("annotation", SKIP, NO_MANIFESTS)
        rendered = self.rendered
        if rendered.service_account_error:
            error = rendered.service_account_error
            return Check("annotation", FAIL, error.message, error.hint)
        value = current_annotation(rendered.server.service_account_object or {})
        if self.pod_identity:
            return self._no_annotation(value)
        if value is None:
            return Check(
                "annotation",
                FAIL,
                f"the ServiceAccount has no {ROLE_ARN_ANNOTATION}",
                "render with `--post-renderer velero-irsa`, or add `-f` with the output of `velero-irsa values`",
            )
        try:
            validate_role_arn(value)
        except ConfigError:
            return Check("annotation", FAIL, f"{value!r} is not an IAM role ARN", "render again with velero-irsa")
        role_arn = self._role_arn()
        if role_arn is None:
            return Check("annotation", SKIP, f"{value} is well formed; the role could not be read to compare")
        if value != role_arn:
            return Check(
                "annotation", FAIL, f"names {value}, but the role is {role_arn}", "render again with velero-irsa"
            )
        return Check("annotation", OK, f"{ROLE_ARN_ANNOTATION} = {value}")

    def _no_annotation(self, value: str | None) -> Check:
        if value is None:
            return Check("annotation", OK, f"no {ROLE_ARN_ANNOTATION}, as pod identity wants")
        return Check(
            "annotation",
            FAIL,
            f"a stale {ROLE_ARN_ANNOTATION} ({value}) makes the AWS SDK use IRSA instead of pod identity",
            "render again with `--post-renderer velero-irsa --post-renderer-args=--mode=pod-identity`",
        )

    def plugin(self) -> Check:
        if self.rendered is None:
            return Check("plugin", SKIP, NO_MANIFESTS)
        images = podidentity.plugin_images(self.rendered.server.deployment)
        wanted = "v" + ".".join(str(part) for part in podidentity.MIN_PLUGIN_VERSION)
        fix = f"use velero/{podidentity.PLUGIN_IMAGE}:{wanted} or later in initContainers"
        if not images:
            return Check("plugin", FAIL, f"no {podidentity.PLUGIN_IMAGE} among the server's containers", fix)
        for image in images:
            supported = podidentity.supports_pod_identity(image)
            if supported is False:
                return Check("plugin", FAIL, f"{image} predates pod identity support ({wanted})", fix)
            if supported is None:
                return Check("plugin", SKIP, f"cannot tell the version of {image}; pod identity needs {wanted}")
        return Check("plugin", OK, f"{', '.join(images)} supports pod identity (needs {wanted} or later)")


def token_access(deployment: dict[str, Any]) -> str:
    """Why the server container can read its projected token file.

    Since Kubernetes 1.19 (every EKS version on offer) the kubelet gives the file to the pod's fsGroup,
    else to a runAsUser all containers share, else writes it 0644; only older kubelets wrote it 0600
    for root, which is what fsGroup used to work around.
    """
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    pod = spec.get("securityContext") if isinstance(spec.get("securityContext"), dict) else {}
    if pod.get("fsGroup") is not None:
        return f"group-owned by fsGroup {pod['fsGroup']}"
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    users = {(c.get("securityContext") or {}).get("runAsUser", pod.get("runAsUser")) for c in containers}
    if len(users) == 1 and None not in users:
        return f"owned by runAsUser {users.pop()}, which every container shares"
    return "mode 0644, the kubelet's default without fsGroup or a shared runAsUser (Kubernetes 1.19 or later)"


def _covers(document: Any, partition: str, bucket: Bucket) -> bool:
    """True when an Allow statement grants s3:ListBucket on the bucket and object access inside it."""
    bucket_arn = f"arn:{partition}:s3:::{bucket.name}"
    listing = objects = False
    for statement in policy.normalise(document).get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions, resources = _as_list(statement.get("Action")), _as_list(statement.get("Resource"))
        listing = listing or ("s3:ListBucket" in actions and bucket_arn in resources)
        objects = objects or ("s3:GetObject" in actions and any(r.startswith(bucket_arn + "/") for r in resources))
    return listing and objects


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


def failed(checks: list[Check]) -> bool:
    return any(check.status == FAIL for check in checks)


def as_json(checks: list[Check]) -> str:
    rows = [asdict(check) for check in checks]
    return json.dumps({"ok": not failed(checks), "checks": rows}, indent=2, ensure_ascii=False)


def as_table(checks: list[Check]) -> str:
    width = max((len(check.label) for check in checks), default=0)
    lines = []
    for check in checks:
        lines.append(f"{MARKS[check.status]} {check.label.ljust(width)}  {check.detail}")
        if check.status == FAIL and check.fix:
            lines.append(f"  {' ' * width}  fix: {check.fix}")
    return "\n".join(lines) + "\n"
