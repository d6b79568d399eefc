"""Resolve, create and converge the IAM role (and its permission policy) for the Velero server.

Like a Terraform plan/apply in one pass: read what exists, work out each difference from the
wanted state, then (unless it is a dry run) make exactly those writes. Roles and policies
without our ownership tag are only ever read, unless the user passes ``--adopt``.
"""

from __future__ import annotations

import difflib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from velero_irsa_postrender import iam_reads, policy
from velero_irsa_postrender.aws import Clients, explained, is_code, translated
from velero_irsa_postrender.errors import AwsError
from velero_irsa_postrender.identity import Cluster, check_oidc_provider
from velero_irsa_postrender.velero import Bucket

log = logging.getLogger(__name__)

MANAGED_BY = ("app.kubernetes.io/managed-by", "velero-irsa")
CLUSTER_TAG = "velero-irsa/cluster"
SERVICE_ACCOUNT_TAG = "velero-irsa/service-account"
MAX_POLICY_VERSIONS = 5
CONSISTENCY_ATTEMPTS = 8
# Concurrent runs may fill the policy's version slots between our delete and our create.
VERSION_ATTEMPTS = 3


@dataclass
class Change:
    """One write that was made (or, in a dry run, would be made)."""

    action: str
    target: str
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        return f"{self.action} {self.target}"

    def diff(self) -> list[str]:
        """A unified diff from ``before`` to ``after`` (documents pretty-printed), for the plan."""
        if self.before is None and self.after is None:
            return []
        before, after = _lines(self.before), _lines(self.after)
        return list(difflib.unified_diff(before, after, "before", "after", n=2, lineterm=""))


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (dict, list)):
        return policy.pretty(value).splitlines()
    return [str(value)]


@dataclass
class RoleRequest:
    """The wanted state, fully resolved: names, documents' inputs and what we may do."""

    clusters: list[Cluster]
    namespace: str
    service_account: str
    buckets: list[Bucket]
    role_name: str
    policy_name: str
    role_path: str = "/"
    kms_key_arns: tuple[str, ...] = ()
    permissions_boundary: str | None = None
    max_session_duration: int | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)
    create: bool = True
    create_bucket: bool = False
    create_oidc_provider: bool = False
    adopt: bool = False
    dry_run: bool = False
    bucket_region: str | None = None
    mode: str = "irsa"

    @property
    def partition(self) -> str:
        return self.clusters[0].partition

    @property
    def account(self) -> str:
        return self.clusters[0].account

    @property
    def subject(self) -> str:
        return policy.subject(self.namespace, self.service_account)

    @property
    def role_arn(self) -> str:
        return policy.role_arn(self.partition, self.account, self.role_name, self.role_path)

    @property
    def policy_arn(self) -> str:
        return policy.policy_arn(self.partition, self.account, self.policy_name, self.role_path)

    @property
    def pod_identity(self) -> bool:
        return self.mode == policy.POD_IDENTITY

    def trust_policy(self) -> dict[str, Any]:
        if self.pod_identity:
            return policy.pod_identity_trust_policy()
        return policy.trust_policy(
            policy.trust_statement(c.provider_arn, c.issuer, self.namespace, self.service_account)
            for c in self.clusters
        )

    def permission_policy(self) -> dict[str, Any]:
        return policy.permission_policy(self.buckets, self.partition, self.kms_key_arns)

    def tags(self) -> list[dict[str, str]]:
        ours = {
            MANAGED_BY[0]: MANAGED_BY[1],
            CLUSTER_TAG: " ".join(c.name for c in self.clusters),
            SERVICE_ACCOUNT_TAG: f"{self.namespace}/{self.service_account}",
        }
        return [{"Key": key, "Value": value} for key, value in {**self.extra_tags, **ours}.items()]


@dataclass
class RoleResult:
    role_arn: str
    role_name: str
    policy_arn: str | None
    trust_subject: str
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False
    managed: bool = True

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["changes"] = [change.describe() for change in self.changes]
        data["plan"] = [asdict(change) for change in self.changes] if self.dry_run else []
        return data


def owned(tags: list[dict[str, str]] | None) -> bool:
    return any(t.get("Key") == MANAGED_BY[0] and t.get("Value") == MANAGED_BY[1] for t in tags or [])


def tags_differ(have: list[dict[str, str]] | None, wanted: list[dict[str, str]]) -> bool:
    """True when a wanted tag is missing or has another value (tags added by hand do not count)."""
    current = {t.get("Key"): t.get("Value") for t in have or []}
    return any(current.get(t["Key"]) != t["Value"] for t in wanted)


class Converger:
    """Brings one role and its policy to the wanted state; every write is recorded as a Change."""

    def __init__(self, request: RoleRequest, clients: Clients, sleep: Callable[[float], None] = time.sleep) -> None:
        self.request, self.clients, self.iam = request, clients, clients.iam
        self.changes: list[Change] = []
        self._sleep = sleep
        self._read_role: tuple[dict[str, Any] | None] | None = None  # set once current_role() has read it

    # -- the pass ----------------------------------------------------------------------------

    def run(self) -> RoleResult:
        with explained(f"converge role {self.request.role_name}"):
            return self._run()

    def current_role(self) -> dict[str, Any] | None:
        """The role as IAM holds it now (read once; run() reuses the answer)."""
        if self._read_role is None:
            with explained(f"read role {self.request.role_name}"):
                self._read_role = (self._get_role(),)
        return self._read_role[0]

    def _run(self) -> RoleResult:
        request = self.request
        role = self.current_role()
        if role is not None and not owned(role.get("Tags")) and not request.adopt:
            return self._use_foreign_role(role)

        policy_state = self._get_policy()
        attached = self._attached_policies(role) if role is not None else []
        needs_work = self._needs_work(role, policy_state, attached)
        if needs_work and not request.create:
            raise AwsError(
                f"role {request.role_name} is missing or out of date and --no-create was given",
                "run without --no-create, or see the difference with `velero-irsa ensure-role --dry-run`",
            )
        if needs_work:
            # Only then: a converged run stays at five read calls. A provider deleted later goes
            # unnoticed here; `velero-irsa doctor` checks it.
            self._check_prerequisites()

        self._converge_policy(policy_state)
        role = self._converge_role(role)
        self._attach(attached)
        return RoleResult(
            role_arn=role["Arn"] if role else request.role_arn,
            role_name=request.role_name,
            policy_arn=request.policy_arn,
            trust_subject=request.subject,
            changes=self.changes,
            dry_run=request.dry_run,
        )

    def _needs_work(self, role: dict | None, policy_state: dict | None, attached: list[str]) -> bool:
        request = self.request
        if role is None or policy_state is None:
            return True
        if not policy.same_document(role["AssumeRolePolicyDocument"], request.trust_policy()):
            return True
        if not policy.same_document(policy_state["Document"], request.permission_policy()):
            return True
        if owned(policy_state.get("Tags")) and tags_differ(policy_state.get("Tags"), request.tags()):
            return True
        if request.adopt and not (owned(role.get("Tags")) and owned(policy_state.get("Tags"))):
            return True  # adopting tags what it takes over: a write
        return request.policy_arn not in attached or self._role_settings_drift(role)

    # -- reading -----------------------------------------------------------------------------

    def _get_role(self) -> dict[str, Any] | None:
        return iam_reads.get_role(self.iam, self.request.role_name)

    def _get_policy(self) -> dict[str, Any] | None:
        return iam_reads.get_policy_with_document(self.iam, self.request.policy_arn)

    def _attached_policies(self, role: dict[str, Any]) -> list[str]:
        return iam_reads.attached_policy_arns(self.iam, role["RoleName"])

    # -- foreign roles -----------------------------------------------------------------------

    def _use_foreign_role(self, role: dict[str, Any]) -> RoleResult:
        request = self.request
        if request.pod_identity and not policy.admits_pod_identity(role["AssumeRolePolicyDocument"]):
            raise AwsError(
                f"role {request.role_name} exists, is not managed by velero-irsa, and its trust policy does not "
                f"let {policy.POD_IDENTITY_SERVICE} call {' and '.join(policy.POD_IDENTITY_ACTIONS)}",
                "pass --adopt to let velero-irsa take it over and fix it, or choose another --role-name",
            )
        for cluster in [] if request.pod_identity else request.clusters:
            if not policy.admits(
                role["AssumeRolePolicyDocument"],
                cluster.provider_arn,
                cluster.issuer,
                request.namespace,
                request.service_account,
            ):
                raise AwsError(
                    f"role {request.role_name} exists, is not managed by velero-irsa, and its trust policy "
                    f"does not admit exactly {request.subject} (aud {policy.AUDIENCE}) from cluster {cluster.name}",
                    "pass --adopt to let velero-irsa take it over and fix it, or choose another --role-name",
                )
        log.info("role %s is not managed by velero-irsa; using it as it is (read-only)", request.role_name)
        attached = self._attached_policies(role)
        if request.policy_arn not in attached:
            log.warning(
                "role %s does not have %s attached (attached: %s); Velero gets only what those grant",
                request.role_name,
                request.policy_arn,
                ", ".join(attached) or "none",
            )
        return RoleResult(
            role["Arn"],
            request.role_name,
            request.policy_arn if request.policy_arn in attached else None,
            request.subject,
            dry_run=request.dry_run,
            managed=False,
        )

    # -- prerequisites -----------------------------------------------------------------------

    def _check_prerequisites(self) -> None:
        request = self.request
        for cluster in [] if request.pod_identity else request.clusters:
            change = check_oidc_provider(cluster, self.clients, request.create_oidc_provider, request.dry_run)
            if change:
                self._record(Change("create", f"oidc-provider {cluster.provider_arn}"))
        for bucket in request.buckets:
            self._check_bucket(bucket)

    def _check_bucket(self, bucket: Bucket) -> None:
        s3 = self.clients.s3
        try:
            with translated(f"check bucket {bucket.name}", "s3:ListBucket"):
                s3.head_bucket(Bucket=bucket.name)
            return
        except Exception as error:
            if not is_code(error, "404", "NoSuchBucket", "NotFound"):
                if is_code(error, "301", "PermanentRedirect"):
                    return  # the bucket exists in another region
                raise
        if not self.request.create_bucket:
            raise AwsError(
                f"bucket {bucket.name} does not exist",
                "create it, fix the bucket in the BackupStorageLocation / --bucket, or pass --create-bucket",
            )
        self._record(Change("create", f"bucket {bucket.name}"))
        if self.request.dry_run:
            return
        region = bucket.region or self.request.bucket_region or self.clients.region
        arguments: dict[str, Any] = {"Bucket": bucket.name}
        if region and region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            with translated(f"create bucket {bucket.name}", "s3:CreateBucket"):
                s3.create_bucket(**arguments)
        except Exception as error:
            if not is_code(error, "BucketAlreadyOwnedByYou"):
                raise

    # -- the permission policy ---------------------------------------------------------------

    def _converge_policy(self, state: dict[str, Any] | None) -> None:
        request = self.request
        wanted = request.permission_policy()
        if state is None:
            self._write(Change("create", f"policy {request.policy_arn}", None, wanted), self._create_policy)
            return
        mine = owned(state.get("Tags"))
        if policy.same_document(state["Document"], wanted):
            if not mine and request.adopt:
                self._write(Change("adopt", f"policy {request.policy_arn}"), self._tag_policy)
            elif mine and tags_differ(state.get("Tags"), request.tags()):
                self._write(Change("update", f"tags of policy {request.policy_arn}"), self._tag_policy)
            return
        if not mine and not request.adopt:
            raise AwsError(
                f"policy {request.policy_arn} exists, is not managed by velero-irsa, and grants "
                "other permissions than Velero needs here",
                "pass --adopt to let velero-irsa take it over, or choose another --policy-name",
            )
        if not mine:
            self._write(Change("adopt", f"policy {request.policy_arn}"), self._tag_policy)
        change = Change("update", f"policy {request.policy_arn}", policy.normalise(state["Document"]), wanted)
        self._write(change, self._new_policy_version)

    def _create_policy(self) -> None:
        request = self.request
        try:
            with translated(f"create policy {request.policy_name}", "iam:CreatePolicy"):
                self.iam.create_policy(
                    PolicyName=request.policy_name,
                    Path=request.role_path,
                    PolicyDocument=policy.render(request.permission_policy()),
                    Description=f"Velero AWS plugin permissions for {request.subject}",
                    Tags=request.tags(),
                )
        except Exception as error:
            if not is_code(error, "EntityAlreadyExists"):
                raise
            log.info("policy %s was created by a concurrent run; converging it", request.policy_name)
            self.changes.pop()
            state = self._eventually(self._get_policy, until_found=True)
            if state is None:
                raise AwsError(
                    f"IAM says policy {request.policy_arn} exists but cannot read it back", "run again in a minute"
                ) from None
            self._converge_policy(state)

    def _tag_policy(self) -> None:
        with translated(f"tag policy {self.request.policy_name}", "iam:TagPolicy"):
            self.iam.tag_policy(PolicyArn=self.request.policy_arn, Tags=self.request.tags())

    def _new_policy_version(self) -> None:
        arn = self.request.policy_arn
        for attempt in range(1, VERSION_ATTEMPTS + 1):
            self._make_room_for_a_version(arn)
            try:
                with translated(f"update policy {arn}", "iam:CreatePolicyVersion"):
                    self.iam.create_policy_version(
                        PolicyArn=arn, PolicyDocument=policy.render(self.request.permission_policy()), SetAsDefault=True
                    )
                return
            except Exception as error:
                if not is_code(error, "LimitExceeded") or attempt == VERSION_ATTEMPTS:
                    raise
            state = self._get_policy()
            if state is not None and policy.same_document(state["Document"], self.request.permission_policy()):
                log.info("policy %s was updated by a concurrent run", arn)
                return
            log.info("policy %s gained a version meanwhile (a concurrent run?); making room again", arn)

    def _make_room_for_a_version(self, arn: str) -> None:
        """IAM keeps at most five versions: delete the oldest one that is not the default."""
        with translated(f"list versions of policy {arn}", "iam:ListPolicyVersions"):
            versions = self.iam.list_policy_versions(PolicyArn=arn)["Versions"]
        spare = sorted((v for v in versions if not v["IsDefaultVersion"]), key=_age)
        if len(versions) < MAX_POLICY_VERSIONS or not spare:
            return
        try:
            with translated(f"delete an old version of policy {arn}", "iam:DeletePolicyVersion"):
                self.iam.delete_policy_version(PolicyArn=arn, VersionId=spare[0]["VersionId"])
        except Exception as error:
            if not is_code(error, "NoSuchEntity"):
                raise
            log.debug("version %s of policy %s was already deleted (a concurrent run?)", spare[0]["VersionId"], arn)

    # -- the role ----------------------------------------------------------------------------

    def _converge_role(self, role: dict[str, Any] | None) -> dict[str, Any] | None:
        request = self.request
        wanted = request.trust_policy()
        if role is None:
            self._write(Change("create", f"role {request.role_name}", None, wanted), self._create_role)
            return None if request.dry_run else self._eventually(self._get_role, until_found=True)
        if role.get("Path", request.role_path) != request.role_path:
            log.warning(
                "role %s stays at path %s: IAM cannot move a role to %s (delete it or choose another --role-name)",
                request.role_name,
                role.get("Path"),
                request.role_path,
            )
        if not owned(role.get("Tags")):
            self._write(Change("adopt", f"role {request.role_name}"), self._tag_role)
        trust = role["AssumeRolePolicyDocument"]
        if not policy.same_document(trust, wanted):
            change = Change("update", f"trust policy of role {request.role_name}", policy.normalise(trust), wanted)
            self._write(change, self._update_trust)
        self._converge_role_settings(role)
        return role

    def _create_role(self) -> None:
        request = self.request
        arguments: dict[str, Any] = {
            "RoleName": request.role_name,
            "Path": request.role_path,
            "AssumeRolePolicyDocument": policy.render(request.trust_policy()),
            "Description": f"Velero server {request.subject} ({request.mode}, managed by velero-irsa)",
            "Tags": request.tags(),
        }
        if request.permissions_boundary:
            arguments["PermissionsBoundary"] = request.permissions_boundary
        if request.max_session_duration:
            arguments["MaxSessionDuration"] = request.max_session_duration
        try:
            with translated(f"create role {request.role_name}", "iam:CreateRole"):
                self.iam.create_role(**arguments)
        except Exception as error:
            if not is_code(error, "EntityAlreadyExists"):
                raise
            log.info("role %s was created by a concurrent run; converging it", request.role_name)
            self.changes.pop()
            role = self._eventually(self._get_role, until_found=True)
            if role is None or (not owned(role.get("Tags")) and not request.adopt):
                raise AwsError(
                    f"role {request.role_name} appeared while this run was creating it, "
                    "and it is not managed by velero-irsa",
                    "run again to see how to proceed",
                ) from None
            self._converge_role(role)

    def _tag_role(self) -> None:
        with translated(f"tag role {self.request.role_name}", "iam:TagRole"):
            self.iam.tag_role(RoleName=self.request.role_name, Tags=self.request.tags())

    def _update_trust(self) -> None:
        with translated(f"update the trust policy of role {self.request.role_name}", "iam:UpdateAssumeRolePolicy"):
            self.iam.update_assume_role_policy(
                RoleName=self.request.role_name, PolicyDocument=policy.render(self.request.trust_policy())
            )

    def _role_settings_drift(self, role: dict[str, Any]) -> bool:
        request = self.request
        boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if request.permissions_boundary and boundary != request.permissions_boundary:
            return True
        duration = request.max_session_duration
        if duration and role.get("MaxSessionDuration") != duration:
            return True
        return tags_differ(role.get("Tags"), request.tags())

    def _converge_role_settings(self, role: dict[str, Any]) -> None:
        request, name = self.request, self.request.role_name
        boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if request.permissions_boundary and boundary != request.permissions_boundary:
            self._write(
                Change("update", f"permissions boundary of role {name}", boundary, request.permissions_boundary),
                self._put_boundary,
            )
        duration = request.max_session_duration
        if duration and role.get("MaxSessionDuration") != duration:
            self._write(
                Change("update", f"max session duration of role {name}", role.get("MaxSessionDuration"), duration),
                self._update_duration,
            )
        if owned(role.get("Tags")) and tags_differ(role.get("Tags"), request.tags()):
            self._write(Change("update", f"tags of role {name}"), self._tag_role)

    def _put_boundary(self) -> None:
        with translated(
            f"set the permissions boundary of role {self.request.role_name}", "iam:PutRolePermissionsBoundary"
        ):
            self.iam.put_role_permissions_boundary(
                RoleName=self.request.role_name, PermissionsBoundary=self.request.permissions_boundary
            )

    def _update_duration(self) -> None:
        with translated(f"update role {self.request.role_name}", "iam:UpdateRole"):
            self.iam.update_role(RoleName=self.request.role_name, MaxSessionDuration=self.request.max_session_duration)

    # -- attachment --------------------------------------------------------------------------

    def _attach(self, attached: list[str]) -> None:
        request = self.request
        if request.policy_arn not in attached:
            self._write(
                Change("attach", f"policy {request.policy_arn} to role {request.role_name}"),
                lambda: self._eventually(self._attach_policy),
            )
        extra = [arn for arn in attached if arn != request.policy_arn]
        left = [arn for arn in extra if not self._detach_if_superseded(arn)]
        if left:
            log.warning("role %s also has other policies attached, left alone: %s", request.role_name, ", ".join(left))

    def _detach_if_superseded(self, arn: str) -> bool:
        """Our own policy for this ServiceAccount under an earlier name or path: its grants are stale.

        Detached only after the current policy is attached, so the role is never without permissions.
        """
        request = self.request
        found = iam_reads.get_policy(self.iam, arn)
        if found is None:
            return False
        tags = found.get("Tags")
        account_tag = {t.get("Key"): t.get("Value") for t in tags or []}.get(SERVICE_ACCOUNT_TAG)
        if not owned(tags) or account_tag != f"{request.namespace}/{request.service_account}" or not request.create:
            return False

        def detach() -> None:
            with translated(f"detach policy {arn} from role {request.role_name}", "iam:DetachRolePolicy"):
                self.iam.detach_role_policy(RoleName=request.role_name, PolicyArn=arn)

        self._write(Change("detach", f"superseded policy {arn} from role {request.role_name}"), detach)
        return True

    def _attach_policy(self) -> None:
        with translated(f"attach the policy to role {self.request.role_name}", "iam:AttachRolePolicy"):
            self.iam.attach_role_policy(RoleName=self.request.role_name, PolicyArn=self.request.policy_arn)

    # -- plumbing ----------------------------------------------------------------------------

    def _write(self, change: Change, apply: Callable[[], Any]) -> None:
        self._record(change)
        if not self.request.dry_run:
            apply()

    def _record(self, change: Change) -> None:
        """Note a change and say it on stderr: the plan in a dry run, the action otherwise."""
        self.changes.append(change)
        if self.request.dry_run:
            log.info("would %s", change.describe())
            for line in change.diff():
                log.info("    %s", line)
            return
        log.info("%s", change.describe()[0].upper() + change.describe()[1:])
        for line in change.diff():
            log.debug("    %s", line)

    def _eventually(self, call: Callable[[], Any], until_found: bool = False) -> Any:
        """Retry a call that IAM's eventual consistency may answer with NoSuchEntity for a moment.

        With ``until_found`` a getter's None (its way of saying NoSuchEntity) is retried too.
        """
        for attempt in range(CONSISTENCY_ATTEMPTS):
            last = attempt == CONSISTENCY_ATTEMPTS - 1
            try:
                result = call()
            except Exception as error:
                if not is_code(error, "NoSuchEntity") or last:
                    raise
            else:
                if result is not None or not until_found or last:
                    return result
            delay = min(8.0, 0.25 * 2**attempt) * (0.5 + random.random() / 2)
            log.debug("IAM has not caught up yet; retrying in %.1fs", delay)
            self._sleep(delay)
        return None


def _age(version: dict[str, Any]) -> tuple[Any, int]:
    """Oldest first; IAM's dates have one-second steps, so the version number breaks ties."""
    number = str(version.get("VersionId", "")).lstrip("v")
    return version.get("CreateDate"), int(number) if number.isdigit() else 0
