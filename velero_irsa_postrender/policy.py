"""The IAM documents and names for a Velero IRSA role, and how to compare documents.

Pure functions only: no AWS calls here, so every rule can be unit-tested directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from velero_irsa_postrender.velero import Bucket

VERSION = "2012-10-17"
AUDIENCE = "sts.amazonaws.com"
# EKS Pod Identity: the agent assumes the role on the pod's behalf and tags the session with
# the pod's cluster, namespace and ServiceAccount.
POD_IDENTITY = "pod-identity"
POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
ROLE_NAME_LIMIT = 64
POLICY_NAME_LIMIT = 128

EC2_ACTIONS = (
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:CreateTags",
    "ec2:CreateVolume",
    "ec2:CreateSnapshot",
    "ec2:DeleteSnapshot",
)
S3_OBJECT_ACTIONS = (
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
# Needed by the AWS plugin for encrypted EBS volumes and SSE-KMS buckets.
KMS_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")
KMS_GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")

_PARTITIONS = {"cn-": "aws-cn", "us-gov-": "aws-us-gov"}


def partition_for_region(region: str) -> str:
    for prefix, partition in _PARTITIONS.items():
        if region.startswith(prefix):
            return partition
    return "aws"


def _bounded(name: str, limit: int) -> str:
    """Shorten a name over IAM's limit to a stable prefix plus a hash of the whole name."""
    if len(name) <= limit:
        return name
    import hashlib  # only for over-long names; keeps hashlib off the post-render start-up

    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: limit - len(digest) - 1]}-{digest}"


def _clean(part: str) -> str:
    """Keep only characters IAM allows in names."""
    return re.sub(r"[^A-Za-z0-9_+=,.@-]", "-", part)


def role_name(cluster: str, namespace: str) -> str:
    """``AWSIRSA<cluster><namespace>Velero``, shortened deterministically past 64 characters."""
    return _bounded(_clean(f"AWSIRSA{cluster}{namespace}Velero"), ROLE_NAME_LIMIT)


def policy_name(role: str) -> str:
    return _bounded(_clean(f"{role}_policy"), POLICY_NAME_LIMIT)


def issuer_host_path(issuer: str) -> str:
    """``https://oidc.eks.<region>.amazonaws.com/id/X`` → ``oidc.eks.<region>.amazonaws.com/id/X``."""
    return re.sub(r"^https?://", "", issuer.strip()).rstrip("/")


def oidc_provider_arn(partition: str, account: str, issuer: str) -> str:
    return f"arn:{partition}:iam::{account}:oidc-provider/{issuer_host_path(issuer)}"


def role_arn(partition: str, account: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account}:role{path}{name}"


def policy_arn(partition: str, account: str, name: str, path: str = "/") -> str:
    return f"arn:{partition}:iam::{account}:policy{path}{name}"


def subject(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def trust_statement(provider_arn: str, issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
    host = issuer_host_path(issuer)
    return {
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{host}:sub": subject(namespace, service_account),
                f"{host}:aud": AUDIENCE,
            }
        },
    }


def trust_policy(statements: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def admits(document: Any, provider_arn: str, issuer: str, namespace: str, service_account: str) -> bool:
    """True when some statement lets exactly this subject, with audience sts, assume the role.

    Wildcards (StringLike), extra subjects in one condition and missing audiences do not count:
    the point is that the role is meant for this ServiceAccount, not merely reachable by it.
    """
    host = issuer_host_path(issuer)
    wanted_sub = subject(namespace, service_account)
    for statement in _statements(normalise(document)):
        if statement.get("Effect") != "Allow":
            continue
        if _as_list((statement.get("Principal") or {}).get("Federated")) != [provider_arn]:
            continue
        if "sts:AssumeRoleWithWebIdentity" not in _as_list(statement.get("Action")):
            continue
        equals = (statement.get("Condition") or {}).get("StringEquals") or {}
        if _as_list(equals.get(f"{host}:sub")) == [wanted_sub] and _as_list(equals.get(f"{host}:aud")) == [AUDIENCE]:
            return True
    return False


def pod_identity_trust_policy() -> dict[str, Any]:
    """The trust of a Pod Identity role: the EKS agent may assume it and tag the session."""
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": POD_IDENTITY_SERVICE},
        "Action": list(POD_IDENTITY_ACTIONS),
    }
    return trust_policy([statement])


def admits_pod_identity(document: Any) -> bool:
    """True when some statement lets the EKS Pod Identity agent assume the role and tag the session."""
    for statement in _statements(normalise(document)):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        if _as_list((statement.get("Principal") or {}).get("Service")) != [POD_IDENTITY_SERVICE]:
            continue
        if set(POD_IDENTITY_ACTIONS) <= set(_as_list(statement.get("Action"))):
            return True
    return False


def permission_policy(buckets: Iterable[Bucket], partition: str, kms_key_arns: Iterable[str] = ()) -> dict:
    """The Velero AWS plugin's permissions, scoped to exactly these buckets (and prefixes)."""
    buckets = list(buckets)
    objects = sorted({_object_arn(partition, bucket) for bucket in buckets})
    bucket_arns = sorted({f"arn:{partition}:s3:::{bucket.name}" for bucket in buckets})
    statements: list[dict[str, Any]] = [
        {"Sid": "VeleroSnapshots", "Effect": "Allow", "Action": list(EC2_ACTIONS), "Resource": "*"},
        {"Sid": "VeleroObjects", "Effect": "Allow", "Action": list(S3_OBJECT_ACTIONS), "Resource": objects},
        {"Sid": "VeleroBuckets", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arns},
    ]
    keys = sorted(set(kms_key_arns))
    if keys:
        statements.append({"Sid": "VeleroKms", "Effect": "Allow", "Action": list(KMS_ACTIONS), "Resource": keys})
        statements.append(
            {
                "Sid": "VeleroKmsGrants",
                "Effect": "Allow",
                "Action": list(KMS_GRANT_ACTIONS),
                "Resource": keys,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return {"Version": VERSION, "Statement": statements}


def _object_arn(partition: str, bucket: Bucket) -> str:
    prefix = f"{bucket.prefix.strip('/')}/" if bucket.prefix.strip("/") else ""
    return f"arn:{partition}:s3:::{bucket.name}/{prefix}*"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statements(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


def normalise(document: Any) -> Any:
    """A canonical form of an IAM document: parsed, URL-decoded, lists sorted, singletons unwrapped.

    IAM returns documents URL-encoded and may reorder lists; two documents that IAM treats the
    same compare equal after this.
    """
    if isinstance(document, str):
        text = document if document.lstrip().startswith("{") else unquote(document)
        document = json.loads(text)
    return _canonical(document)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        canonical = {key: _canonical(item) for key, item in value.items()}
        if isinstance(canonical.get("Statement"), dict):
            canonical["Statement"] = [canonical["Statement"]]
        return canonical
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        if len(items) == 1 and not isinstance(items[0], dict):
            return items[0]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    return value


def same_document(left: Any, right: Any) -> bool:
    return normalise(left) == normalise(right)


def render(document: Any) -> str:
    """The compact JSON sent to IAM (stable key order, so diffs and tests read well)."""
    return json.dumps(document, separators=(",", ":"))


def pretty(document: Any) -> str:
    return json.dumps(normalise(document), indent=2, sort_keys=True)
