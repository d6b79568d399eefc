"""EKS Pod Identity: an association, not an annotation, tells EKS which role the Velero server gets.

In this mode the role trusts the EKS Pod Identity agent (``pods.eks.amazonaws.com``) instead of
an OIDC provider, and nothing on the ServiceAccount names the role: EKS keeps the link, one
association per cluster, namespace and ServiceAccount. Like the role, an association is found,
created or corrected, and one that velero-irsa did not create is only changed with ``--adopt``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from velero_irsa_postrender.aws import Clients, is_code, translated
from velero_irsa_postrender.errors import AwsError
from velero_irsa_postrender.role import MANAGED_BY, Change

log = logging.getLogger(__name__)

# The AWS plugin learnt the Pod Identity agent's credentials endpoint when it moved to the AWS SDK
# for Go v2; older plugins refuse the agent's link-local address.
PLUGIN_IMAGE = "velero-plugin-for-aws"
MIN_PLUGIN_VERSION = (1, 10, 0)
_VERSION_TAG = re.compile(r":v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][^:/]*)?$")


@dataclass(frozen=True)
class Association:
    """One EKS pod identity association: which role pods of a ServiceAccount get in a cluster."""

    cluster: str
    association_id: str
    association_arn: str
    role_arn: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def owned(self) -> bool:
        return self.tags.get(MANAGED_BY[0]) == MANAGED_BY[1]


def describe_target(cluster: str, namespace: str, service_account: str) -> str:
    return f"pod identity association {namespace}/{service_account} in cluster {cluster}"


def find(clients: Clients, cluster: str, namespace: str, service_account: str) -> Association | None:
    """The association for this ServiceAccount in this cluster, if EKS has one."""
    summaries = _list(clients, cluster, namespace, service_account)
    match = next(
        (s for s in summaries if s.get("namespace") == namespace and s.get("serviceAccount") == service_account),
        None,
    )
    if match is None:
        return None
    with translated(f"read the pod identity associations of cluster {cluster}", "eks:DescribePodIdentityAssociation"):
        found = clients.eks.describe_pod_identity_association(
            clusterName=cluster, associationId=match["associationId"]
        )["association"]
    return Association(
        cluster,
        found["associationId"],
        found.get("associationArn", ""),
        found.get("roleArn", ""),
        found.get("tags") or {},
    )


def _list(clients: Clients, cluster: str, namespace: str, service_account: str) -> list[dict[str, Any]]:
    arguments: dict[str, Any] = {"clusterName": cluster, "namespace": namespace, "serviceAccount": service_account}
    summaries: list[dict[str, Any]] = []
    try:
        with translated(f"list the pod identity associations of cluster {cluster}", "eks:ListPodIdentityAssociations"):
            while True:
                page = clients.eks.list_pod_identity_associations(**arguments)
                summaries.extend(page.get("associations") or [])
                if not page.get("nextToken"):
                    return summaries
                arguments["nextToken"] = page["nextToken"]
    except Exception as error:
        if is_code(error, "ResourceNotFoundException"):
            raise AwsError(
                f"EKS cluster {cluster} not found in region {clients.region}",
                "check --cluster and --region / AWS_REGION",
            ) from None
        raise


def converge(
    clients: Clients,
    clusters: list[str],
    namespace: str,
    service_account: str,
    role_arn: str,
    *,
    create: bool = True,
    adopt: bool = False,
    dry_run: bool = False,
) -> list[Change]:
    """Make every cluster's association for the ServiceAccount name ``role_arn``; the changes made."""
    changes = []
    for cluster in clusters:
        change = _converge_one(clients, cluster, namespace, service_account, role_arn, create, adopt, dry_run)
        if change is not None:
            changes.append(change)
    return changes


def _converge_one(
    clients: Clients,
    cluster: str,
    namespace: str,
    service_account: str,
    role_arn: str,
    create: bool,
    adopt: bool,
    dry_run: bool,
) -> Change | None:
    target = describe_target(cluster, namespace, service_account)
    found = find(clients, cluster, namespace, service_account)
    if found is not None and found.role_arn == role_arn:
        log.debug("%s already names %s", target, role_arn)
        return None
    if not create:
        raise AwsError(
            f"{target} is missing or names another role, and --no-create was given",
            "run without --no-create, or see the difference with `velero-irsa doctor --mode pod-identity`",
        )
    if found is not None and not found.owned and not adopt:
        raise AwsError(
            f"{target} exists, was not created by velero-irsa, and gives the Velero server role {found.role_arn}",
            f"pass --adopt to point it at {role_arn}, or delete it with `aws eks delete-pod-identity-association`",
        )

    change = Change("create" if found is None else "update", target, found.role_arn if found else None, role_arn)
    if dry_run:
        log.info("would %s", change.describe())
        return change
    log.info("%s", change.describe()[0].upper() + change.describe()[1:])
    if found is None:
        _create(clients, cluster, namespace, service_account, role_arn)
    else:
        _update(clients, found, role_arn)
    return change


def _create(clients: Clients, cluster: str, namespace: str, service_account: str, role_arn: str) -> None:
    # TODO(checked against a stub, not real EKS): EKS may not see a role IAM created a moment ago;
    # retrying its InvalidParameterException a few times, as role.py does for IAM, would cover that.
    with translated(f"create the pod identity association in cluster {cluster}", "eks:CreatePodIdentityAssociation"):
        clients.eks.create_pod_identity_association(
            clusterName=cluster,
            namespace=namespace,
            serviceAccount=service_account,
            roleArn=role_arn,
            tags={MANAGED_BY[0]: MANAGED_BY[1]},
        )


def _update(clients: Clients, association: Association, role_arn: str) -> None:
    # TODO(EKS tags need the association ARN and eks:TagResource): an adopted association keeps its
    # own tags, so delete-role leaves it in place; tagging it on adoption would let teardown see it.
    with translated(
        f"update the pod identity association in cluster {association.cluster}", "eks:UpdatePodIdentityAssociation"
    ):
        clients.eks.update_pod_identity_association(
            clusterName=association.cluster, associationId=association.association_id, roleArn=role_arn
        )


def delete(clients: Clients, association: Association) -> None:
    with translated(
        f"delete the pod identity association in cluster {association.cluster}", "eks:DeletePodIdentityAssociation"
    ):
        clients.eks.delete_pod_identity_association(
            clusterName=association.cluster, associationId=association.association_id
        )


# -- the AWS plugin --------------------------------------------------------------------------


def plugin_images(deployment: dict[str, Any]) -> list[str]:
    """Images of the Velero AWS plugin among the Deployment's (init) containers."""
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    images = [str(c.get("image") or "") for c in containers if isinstance(c, dict)]
    return [image for image in images if PLUGIN_IMAGE in image]


def plugin_version(image: str) -> tuple[int, int, int] | None:
    """``velero/velero-plugin-for-aws:v1.13.0`` → (1, 13, 0); None for a digest or ``latest``."""
    match = _VERSION_TAG.search(image.split("@", 1)[0])
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def supports_pod_identity(image: str) -> bool | None:
    version = plugin_version(image)
    return None if version is None else version >= MIN_PLUGIN_VERSION
