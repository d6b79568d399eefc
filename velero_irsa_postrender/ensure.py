"""From settings (and what the manifests say) to a converged role: the role step of the flow."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from velero_irsa_postrender import policy
from velero_irsa_postrender.errors import ConfigError
from velero_irsa_postrender.role import RoleResult
from velero_irsa_postrender.settings import Settings, validate_role_arn
from velero_irsa_postrender.velero import Bucket

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "velero"
DEFAULT_SERVICE_ACCOUNT = "velero-server"


@dataclass
class Target:
    """Whom the role is for and which buckets it serves."""

    namespace: str
    service_account: str
    buckets: list[Bucket] = field(default_factory=list)


def target_from_settings(settings: Settings, helm_namespace: str | None = None) -> Target:
    """The target of ``ensure-role`` and ``values``, where no manifest says anything."""
    namespace = settings.namespace or helm_namespace or DEFAULT_NAMESPACE
    account = settings.service_account or DEFAULT_SERVICE_ACCOUNT
    return Target(namespace, account, [])


def choose_buckets(settings: Settings, rendered: list[Bucket]) -> list[Bucket]:
    """``--bucket`` wins; else the BackupStorageLocations' buckets; else ``velero-<cluster>``."""
    if settings.buckets:
        return [Bucket(name, settings.bucket_prefix or "", "") for name in settings.buckets]
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
        arn, arn.rsplit("/", 1)[-1], "", policy.subject(target.namespace, target.service_account), managed=False
    )


def ensure_role(settings: Settings, target: Target) -> RoleResult:
    """Resolve the role: as given (``--role-arn``), or found / created / converged in IAM."""
    if settings.role_arn:
        return given_role(settings, target)
    if not settings.clusters:
        raise ConfigError(
            "no EKS cluster given, and no --role-arn", "pass --cluster NAME (or VELERO_IRSA_CLUSTER), or --role-arn ARN"
        )

    from velero_irsa_postrender.aws import Clients
    from velero_irsa_postrender.identity import resolve_clusters
    from velero_irsa_postrender.role import Converger, RoleRequest

    buckets = choose_buckets(settings, target.buckets)
    clients = Clients(settings.region, settings.profile)
    if clients.region is None:
        fallback = next((b.region for b in buckets if b.region), None)
        if fallback:
            log.info("no AWS region configured; using the backup bucket's region %s", fallback)
            clients = Clients(fallback, settings.profile)

    clusters = resolve_clusters(settings, clients)
    name = settings.role_name or policy.role_name(clusters[0].name, target.namespace)
    request = RoleRequest(
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
    )
    log.debug("role %s for %s, buckets %s", name, request.subject, ", ".join(b.name for b in buckets))
    result = Converger(request, clients).run()
    validate_role_arn(result.role_arn)
    return result
