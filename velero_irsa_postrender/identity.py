"""Who and where: the EKS cluster's OIDC issuer, the account, the partition, the IAM OIDC provider."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from velero_irsa_postrender import policy
from velero_irsa_postrender.aws import Clients, explained, is_code, translated
from velero_irsa_postrender.errors import AwsError, ConfigError
from velero_irsa_postrender.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cluster:
    name: str
    issuer: str
    account: str
    partition: str

    @property
    def provider_arn(self) -> str:
        return policy.oidc_provider_arn(self.partition, self.account, self.issuer)


def resolve_clusters(settings: Settings, clients: Clients) -> list[Cluster]:
    """Each named cluster with its OIDC issuer; ``--oidc-issuer`` skips eks:DescribeCluster."""
    if not settings.clusters:
        raise ConfigError("no EKS cluster given", "pass --cluster NAME (or set VELERO_IRSA_CLUSTER)")
    if settings.oidc_issuers:
        if len(settings.oidc_issuers) != len(settings.clusters):
            raise ConfigError(
                f"{len(settings.clusters)} cluster(s) but {len(settings.oidc_issuers)} --oidc-issuer",
                "give one --oidc-issuer per --cluster, in the same order, or none at all",
            )
        account = settings.account_id or _caller_account(clients)
        partition = policy.partition_for_region(clients.region or "")
        pairs = zip(settings.clusters, settings.oidc_issuers, strict=True)
        return [Cluster(name, issuer, account, partition) for name, issuer in pairs]
    with explained("look up the EKS clusters"):
        return [_describe(name, settings, clients) for name in settings.clusters]


def _describe(name: str, settings: Settings, clients: Clients) -> Cluster:
    try:
        with translated(f"describe EKS cluster {name}", "eks:DescribeCluster"):
            cluster = clients.eks.describe_cluster(name=name)["cluster"]
    except Exception as error:
        if is_code(error, "ResourceNotFoundException"):
            raise AwsError(
                f"EKS cluster {name} not found in region {clients.region}", "check --cluster and --region / AWS_REGION"
            ) from None
        raise
    issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
    if not issuer:
        raise AwsError(f"EKS cluster {name} has no OIDC issuer", "IRSA needs an EKS cluster with an OIDC issuer")
    _, partition, _, _, account, _ = cluster["arn"].split(":", 5)
    return Cluster(name, issuer, settings.account_id or account, partition)


def _caller_account(clients: Clients) -> str:
    with explained("identify the caller"), translated("identify the caller", "sts:GetCallerIdentity"):
        return clients.sts.get_caller_identity()["Account"]


def check_oidc_provider(cluster: Cluster, clients: Clients, create: bool, dry_run: bool) -> str | None:
    """Make sure IAM trusts the cluster's issuer; returns a change description if one is (to be) made."""
    arn = cluster.provider_arn
    try:
        with translated("read the IAM OIDC provider", "iam:GetOpenIDConnectProvider"):
            provider = clients.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except Exception as error:
        if not is_code(error, "NoSuchEntity"):
            raise
        if not create:
            raise AwsError(
                f"the IAM OIDC provider for cluster {cluster.name} ({policy.issuer_host_path(cluster.issuer)}) "
                "does not exist, so no role can trust it",
                f"run `eksctl utils associate-iam-oidc-provider --cluster {cluster.name} --approve`, "
                "or pass --create-oidc-provider",
            ) from None
        if not dry_run:
            _create_oidc_provider(cluster, clients)
        return f"create IAM OIDC provider {arn}"
    if policy.AUDIENCE not in provider.get("ClientIDList", []):
        log.warning(
            "the IAM OIDC provider %s does not list the audience %s; "
            "add it with `aws iam add-client-id-to-open-id-connect-provider`",
            arn,
            policy.AUDIENCE,
        )
    return None


def _create_oidc_provider(cluster: Cluster, clients: Clients) -> None:
    from velero_irsa_postrender.role import CLUSTER_TAG, MANAGED_BY

    tags = [{"Key": MANAGED_BY[0], "Value": MANAGED_BY[1]}, {"Key": CLUSTER_TAG, "Value": cluster.name}]
    try:
        with translated("create the IAM OIDC provider", "iam:CreateOpenIDConnectProvider"):
            clients.iam.create_open_id_connect_provider(Url=cluster.issuer, ClientIDList=[policy.AUDIENCE], Tags=tags)
    except Exception as error:
        if not is_code(error, "EntityAlreadyExists"):
            raise
        log.info("the IAM OIDC provider for cluster %s was created meanwhile (a concurrent run?)", cluster.name)
