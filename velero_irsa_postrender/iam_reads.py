"""The IAM reads that the converger, doctor and delete-role share: a missing entity is None, not an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from velero_irsa_postrender.aws import is_code, translated

T = TypeVar("T")


def _unless_missing(read: Callable[[], T], doing: str, action: str) -> T | None:
    try:
        with translated(doing, action):
            return read()
    except Exception as error:
        if is_code(error, "NoSuchEntity"):
            return None
        raise


def get_role(iam: Any, name: str) -> dict[str, Any] | None:
    return _unless_missing(lambda: iam.get_role(RoleName=name)["Role"], f"read role {name}", "iam:GetRole")


def get_policy(iam: Any, arn: str) -> dict[str, Any] | None:
    return _unless_missing(lambda: iam.get_policy(PolicyArn=arn)["Policy"], f"read policy {arn}", "iam:GetPolicy")


def get_policy_with_document(iam: Any, arn: str) -> dict[str, Any] | None:
    """The policy (tags, default version) with its default version's document under ``Document``."""
    found = get_policy(iam, arn)
    if found is None:
        return None
    version = _unless_missing(
        lambda: iam.get_policy_version(PolicyArn=arn, VersionId=found["DefaultVersionId"])["PolicyVersion"],
        f"read policy {arn}",
        "iam:GetPolicyVersion",
    )
    return None if version is None else {**found, "Document": version["Document"]}


def attached_policy_arns(iam: Any, role_name: str) -> list[str]:
    with translated(f"list the policies of role {role_name}", "iam:ListAttachedRolePolicies"):
        pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name)
        return [item["PolicyArn"] for page in pages for item in page["AttachedPolicies"]]
