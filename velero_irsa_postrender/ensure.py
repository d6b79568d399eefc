"""From settings (and what the manifests say) to a converged role: the role step of the flow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from velero_irsa_postrender import policy
from velero_irsa_postrender.errors import ConfigError
from velero_irsa_postrender.role import RoleResult
from velero_irsa_postrender.settings import Settings, validate_role_arn
from velero_irsa_postrender.velero import Bucket

if TYPE_CHECKING:
    from velero_irsa_postrender.aws import Clients
    from velero_irsa_postrender.identity import Cluster
    from velero_irsa_postrender.role import Change, RoleRequest

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "velero"
DEFAULT_SERVICE_ACCOUNT = "velero-server"
# IAM's default quota for a role's trust policy, counted without whitespace; one statement per cluster.
TRUST_POLICY_QUOTA = 2048


@dataclass
class Target:
    """Whom the role is for and which buckets it serves."""

    namespace: str
    service_account: str
    buckets: list[Bucket] = field(default_factory=list)


def target_from_settings(settings: Settings, helm_namespace: str | None = None) -> Target:
    """The target of ``ensure-role`` and ``values``, where no manifest says anything."""
    namespace = settings.namespace or helm_namespace or DEFAULT_NAMESPACE
    if not settings.namespace and helm_namespace == "default":
        # Helm sets HELM_NAMESPACE=default for every plugin call without -n; Velero rarely lives there.
        log.warning(
            "namespace `default` comes from HELM_NAMESPACE (no -n given); Velero usually runs in "
            "`velero`: pass -n / --namespace if the trust policy should name another namespace"
        )
    account = settings.service_account or DEFAULT_SERVICE_ACCOUNT
    return Target(namespace, account, [])


def choose_buckets(settings: Settings, rendered: list[Bucket]) -> list[Bucket]:
    """``--bucket`` wins; else the BackupStorageLocations' buckets; else ``velero-<cluster>``."""
    if settings.buckets:
        given = [Bucket(name, settings.bucket_prefix or "", "") for name in settings.buckets]
        left_out = sorted({b.name for b in rendered} - {b.name for b in given})
        if left_out:
            log.warning(
                "--bucket replaces the BackupStorageLocations' buckets: the role will not reach %s, "
                "which Velero is configured to use",
                ", ".join(left_out),
            )
        return given
    if rendered:
        return rendered
    if settings.cluster:
        return [Bucket(f"velero-{settings.cluster}".lower()[:63], settings.bucket_prefix or "", "")]
    return []


def given_role(settings: Settings, target: Target) -> RoleResult:
    """``--role-arn``: take the ARN as given, call no AWS API."""
    arn = settings.role_arn or ""
    validate_role_arn(arn)
    log.debug("using the given role %s without calling AWS", arn)
    return RoleResult(
        arn, arn.rsplit("/", 1)[-1], None, policy.subject(target.namespace, target.service_account), managed=False
    )


def ensure_role(settings: Settings, target: Target) -> RoleResult:
    """Resolve the role: as given (``--role-arn``), or found / created / converged in IAM."""
    if settings.role_arn:
        if settings.mode == policy.POD_IDENTITY:
            log.info("--role-arn calls no AWS API: the pod identity association is left to you (see doctor)")
        return given_role(settings, target)
    if not settings.clusters:
        raise ConfigError(
            "no EKS cluster given, and no --role-arn", "pass --cluster NAME (or VELERO_IRSA_CLUSTER), or --role-arn ARN"
        )

    from velero_irsa_postrender.identity import resolve_clusters
    from velero_irsa_postrender.role import Converger

    buckets = choose_buckets(settings, target.buckets)
    clients = clients_for(settings, buckets)
    clusters = resolve_clusters(settings, clients)
    request = role_request(settings, target, clusters, buckets)
    log.debug("role %s for %s, buckets %s", request.role_name, request.subject, ", ".join(b.name for b in buckets))
    warn_if_trust_too_long(request)
    if not request.pod_identity:
        result = Converger(request, clients).run()
        validate_role_arn(result.role_arn)
        return result
    return _ensure_pod_identity(settings, target, request, clients)


def _ensure_pod_identity(settings: Settings, target: Target, request: RoleRequest, clients: Clients) -> RoleResult:
    """Role and associations, ordered so that a failure never leaves the server without a way in.

    An existing (IRSA) role gets its associations first: should EKS refuse them, the old trust
    still works. A new role must exist before EKS accepts an association naming it.
    """
    from velero_irsa_postrender import podidentity
    from velero_irsa_postrender.role import Converger, owned

    def associate(role_arn: str) -> list[Change]:
        return podidentity.converge(
            clients,
            [cluster.name for cluster in request.clusters],
            target.namespace,
            target.service_account,
            role_arn,
            create=settings.create,
            adopt=settings.adopt,
            dry_run=settings.dry_run,
        )

    converger = Converger(request, clients)
    existing = converger.current_role()
    early = existing is not None and (owned(existing.get("Tags")) or settings.adopt)
    first = associate(existing["Arn"]) if early else []
    result = converger.run()
    validate_role_arn(result.role_arn)
    result.changes = first + result.changes + ([] if early else associate(result.role_arn))
    return result


def clients_for(settings: Settings, buckets: list[Bucket]) -> Clients:
    """The AWS clients; with no region configured, the backup bucket's region."""
    from velero_irsa_postrender.aws import Clients

    fallback = next((b.region for b in buckets if b.region), None)
    clients = Clients(settings.region, settings.profile, fallback_region=fallback)
    if fallback and clients.session.region_name is None:
        log.info("no AWS region configured; using the backup bucket's region %s", fallback)
    return clients


def role_request(settings: Settings, target: Target, clusters: list[Cluster], buckets: list[Bucket]) -> RoleRequest:
    """The wanted role, policy and trust for this target, from the settings."""
    from velero_irsa_postrender.role import RoleRequest

    name = settings.role_name or policy.role_name(clusters[0].name, target.namespace)
    return RoleRequest(
        clusters=clusters,
        namespace=target.namespace,
        service_account=target.service_account,
        buckets=buckets,
        role_name=name,
        policy_name=settings.policy_name or policy.policy_name(name),
        role_path=settings.role_path,
        kms_key_arns=settings.kms_key_arns,
        permissions_boundary=settings.permissions_boundary,
        max_session_duration=settings.max_session_duration,
        extra_tags=dict(settings.tags),
        create=settings.create,
        create_bucket=settings.create_bucket,
        create_oidc_provider=settings.create_oidc_provider,
        adopt=settings.adopt,
        dry_run=settings.dry_run,
        mode=settings.mode,
    )


def warn_if_trust_too_long(request: RoleRequest) -> None:
    """IAM refuses a trust policy over its quota; say so before the write, and how to raise it."""
    size = len(policy.render(request.trust_policy()))
    if size <= TRUST_POLICY_QUOTA * 0.8:
        return
    how = (
        "ask for a higher 'Role trust policy length' quota for IAM in Service Quotas (up to 8,192), "
        "or split the clusters over several roles with --role-name"
    )
    if size > TRUST_POLICY_QUOTA:
        log.warning(
            "the trust policy of role %s is %d characters, over IAM's default quota of %d; IAM refuses it "
            "unless the quota of this account was raised: %s",
            request.role_name,
            size,
            TRUST_POLICY_QUOTA,
            how,
        )
    else:
        log.warning(
            "the trust policy of role %s is %d of IAM's default %d characters; a few more clusters will not fit: %s",
            request.role_name,
            size,
            TRUST_POLICY_QUOTA,
            how,
        )
