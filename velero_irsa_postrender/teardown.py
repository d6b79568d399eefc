"""``velero-irsa delete-role``: remove exactly what velero-irsa created for a Velero server.

The whole plan is read and checked before the first delete: a role or policy without our
ownership tag, or one that something else still uses, stops the run with nothing removed.
Buckets (the backups live there) and IAM OIDC providers (other roles trust them) are never
touched. A policy that is not ours is only detached from our role, never deleted.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from velero_irsa_postrender import iam_reads, podidentity, policy
from velero_irsa_postrender.aws import Clients, translated
from velero_irsa_postrender.ensure import clients_for, target_from_settings
from velero_irsa_postrender.errors import AwsError, ConfigError
from velero_irsa_postrender.role import CLUSTER_TAG, MANAGED_BY, owned
from velero_irsa_postrender.settings import Settings

log = logging.getLogger(__name__)

NOT_OURS_HINT = "delete-role only removes what velero-irsa created; remove it yourself if you mean to"


@dataclass
class Step:
    """One delete (or detach) the teardown makes, and how to make it."""

    action: str
    target: str
    permission: str
    call: Callable[[], Any] = field(repr=False, compare=False)

    def describe(self) -> str:
        return f"{self.action} {self.target}"


@dataclass
class Plan:
    role_name: str
    steps: list[Step] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "role_name": self.role_name,
            "dry_run": self.dry_run,
            "steps": [step.describe() for step in self.steps],
            "kept": self.kept,
        }


def delete_role(settings: Settings, helm_namespace: str | None = None) -> Plan:
    """Plan the teardown, then (unless it is a dry run) carry it out step by step."""
    clients = clients_for(settings, [])
    plan = Planner(settings, clients, helm_namespace).plan()
    plan.dry_run = settings.dry_run
    if not plan.steps:
        log.info("nothing of velero-irsa's to delete for role %s", plan.role_name)
    for step in plan.steps:
        if plan.dry_run:
            log.info("would %s", step.describe())
            continue
        log.info("%s", step.describe()[0].upper() + step.describe()[1:])
        with translated(step.describe(), step.permission):
            step.call()
    return plan


class Planner:
    """Reads what exists and turns it into steps, refusing anything that is not ours."""

    def __init__(self, settings: Settings, clients: Clients, helm_namespace: str | None = None) -> None:
        self.settings, self.clients, self.iam = settings, clients, clients.iam
        self.target = target_from_settings(settings, helm_namespace)

    def plan(self) -> Plan:
        name = self._role_name()
        plan = Plan(name)
        role = self._get_role(name)
        if role is not None and not owned(role.get("Tags")):
            raise AwsError(f"role {name} is not managed by velero-irsa (no {'='.join(MANAGED_BY)} tag)", NOT_OURS_HINT)
        if role is not None:
            self._check_serves_only_these_clusters(name, role)
        policy_arn = self._policy_arn(name, role)
        found = self._get_policy(policy_arn)
        if found is not None and owned(found.get("Tags")):
            self._check_policy_unshared(policy_arn, name)
        if role is not None:
            self._check_role_bare(name)

        if role is not None and self.settings.mode == policy.POD_IDENTITY:
            plan.steps += self._association_steps(role["Arn"], plan)
        elif role is not None and policy.admits_pod_identity(role["AssumeRolePolicyDocument"]):
            log.warning(
                "role %s trusts EKS Pod Identity; its associations stay unless you pass --mode pod-identity",
                name,
            )
        attached = self._attached(name) if role is not None else []
        plan.steps += self._detach_steps(name, attached)
        if found is not None and owned(found.get("Tags")):
            plan.steps += self._policy_steps(policy_arn)
        elif found is not None:
            plan.kept.append(f"policy {policy_arn}: not managed by velero-irsa")
        for arn in attached:
            if arn != policy_arn:
                plan.steps += self._earlier_policy_steps(arn, name, plan)
        if role is not None:
            plan.steps.append(
                Step("delete", f"role {name}", "iam:DeleteRole", lambda: self.iam.delete_role(RoleName=name))
            )
        return plan

    # -- names -------------------------------------------------------------------------------

    def _role_name(self) -> str:
        settings = self.settings
        if settings.role_arn:
            return settings.role_arn.rsplit("/", 1)[-1]
        if settings.role_name:
            return settings.role_name
        if not settings.cluster:
            raise ConfigError("no role to delete", "pass --cluster NAME (and --namespace), --role-name or --role-arn")
        return policy.role_name(settings.cluster, self.target.namespace)

    def _policy_arn(self, role_name: str, role: dict[str, Any] | None) -> str:
        name = self.settings.policy_name or policy.policy_name(role_name)
        if role is not None:
            _, partition, _, _, account, _ = role["Arn"].split(":", 5)
            return policy.policy_arn(partition, account, name, role.get("Path") or "/")
        with translated("identify the caller", "sts:GetCallerIdentity"):
            account = self.clients.sts.get_caller_identity()["Account"]
        partition = policy.partition_for_region(self.clients.region or "")
        return policy.policy_arn(partition, account, name, self.settings.role_path)

    # -- reading and refusing ----------------------------------------------------------------

    def _get_role(self, name: str) -> dict[str, Any] | None:
        return iam_reads.get_role(self.iam, name)

    def _get_policy(self, arn: str) -> dict[str, Any] | None:
        return iam_reads.get_policy(self.iam, arn)

    def _check_serves_only_these_clusters(self, name: str, role: dict[str, Any]) -> None:
        """A role shared by several clusters goes only when every one of them is named."""
        tags = {tag["Key"]: tag["Value"] for tag in role.get("Tags") or []}
        serves = set(tags.get(CLUSTER_TAG, "").split())
        others = sorted(serves - set(self.settings.clusters))
        if self.settings.clusters and others:
            raise AwsError(
                f"role {name} also serves cluster {', '.join(others)} (tag {CLUSTER_TAG})",
                "name every cluster it serves with --cluster to delete it, or run ensure-role without the "
                "clusters you are retiring",
            )

    def _check_policy_unshared(self, arn: str, role_name: str) -> None:
        with translated(f"list what uses policy {arn}", "iam:ListEntitiesForPolicy"):
            used = self.iam.list_entities_for_policy(PolicyArn=arn)
        others = [f"role {r['RoleName']}" for r in used.get("PolicyRoles", []) if r["RoleName"] != role_name]
        others += [f"user {u['UserName']}" for u in used.get("PolicyUsers", [])]
        others += [f"group {g['GroupName']}" for g in used.get("PolicyGroups", [])]
        if others:
            raise AwsError(
                f"policy {arn} is also attached to {', '.join(others)}",
                "detach it there first; delete-role does not break what it did not set up",
            )

    def _check_role_bare(self, name: str) -> None:
        """Inline policies and instance profiles are never ours; deleting the role would lose them."""
        with translated(f"list the inline policies of role {name}", "iam:ListRolePolicies"):
            inline = self.iam.list_role_policies(RoleName=name)["PolicyNames"]
        with translated(f"list the instance profiles of role {name}", "iam:ListInstanceProfilesForRole"):
            profiles = [
                p["InstanceProfileName"]
                for p in self.iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]
            ]
        extra = [f"inline policy {p}" for p in inline] + [f"instance profile {p}" for p in profiles]
        if extra:
            raise AwsError(
                f"role {name} also holds {', '.join(extra)}, which velero-irsa did not create", NOT_OURS_HINT
            )

    # -- steps -------------------------------------------------------------------------------

    def _association_steps(self, role_arn: str, plan: Plan) -> list[Step]:
        steps = []
        namespace, account = self.target.namespace, self.target.service_account
        for cluster in self.settings.clusters:
            found = podidentity.find(self.clients, cluster, namespace, account)
            if found is None or found.role_arn != role_arn:
                continue
            target = podidentity.describe_target(cluster, namespace, account)
            if not found.owned:
                plan.kept.append(f"{target}: not created by velero-irsa")
                continue
            call = functools.partial(podidentity.delete, self.clients, found)
            steps.append(Step("delete", target, "eks:DeletePodIdentityAssociation", call))
        return steps

    def _attached(self, role_name: str) -> list[str]:
        return iam_reads.attached_policy_arns(self.iam, role_name)

    def _earlier_policy_steps(self, arn: str, role_name: str, plan: Plan) -> list[Step]:
        """A policy of ours from an earlier --policy-name or --role-path goes too, unless shared."""
        found = self._get_policy(arn)
        if found is None or not owned(found.get("Tags")):
            plan.kept.append(f"policy {arn}: not managed by velero-irsa")
            return []
        try:
            self._check_policy_unshared(arn, role_name)
        except AwsError as error:
            plan.kept.append(f"policy {arn}: {error.message}")
            return []
        return self._policy_steps(arn)

    def _detach_steps(self, role_name: str, attached: list[str]) -> list[Step]:
        return [
            Step(
                "detach",
                f"policy {arn} from role {role_name}",
                "iam:DetachRolePolicy",
                lambda arn=arn: self.iam.detach_role_policy(RoleName=role_name, PolicyArn=arn),
            )
            for arn in attached
        ]

    def _policy_steps(self, arn: str) -> list[Step]:
        with translated(f"list versions of policy {arn}", "iam:ListPolicyVersions"):
            versions = self.iam.list_policy_versions(PolicyArn=arn)["Versions"]
        steps = [
            Step(
                "delete",
                f"version {v['VersionId']} of policy {arn}",
                "iam:DeletePolicyVersion",
                lambda v=v: self.iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"]),
            )
            for v in versions
            if not v["IsDefaultVersion"]
        ]
        steps.append(Step("delete", f"policy {arn}", "iam:DeletePolicy", lambda: self.iam.delete_policy(PolicyArn=arn)))
        return steps
