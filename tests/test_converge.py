"""ensure-role converging IAM, end to end through the counting proxy: ownership, drift, dry runs, options.

Every run goes moto ← fault proxy ← the real CLI in a subprocess, so ``proxy.writes`` lists
exactly the write calls a run made; arranging and reading back goes to moto directly.
"""

from __future__ import annotations

import json

import faultproxy
import pytest
import yaml
from conftest import ACCOUNT, BUCKET, CLUSTER, run_cli

ROLE = "AWSIRSAprod-euveleroVelero"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
POLICY_NAME = f"{ROLE}_policy"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{POLICY_NAME}"
SUBJECT = "system:serviceaccount:velero:velero-server"
ARGS = ["ensure-role", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET]
MANAGED = {"Key": "app.kubernetes.io/managed-by", "Value": "velero-irsa"}
OURS = [MANAGED, {"Key": "velero-irsa/cluster", "Value": CLUSTER}]
OURS.append({"Key": "velero-irsa/service-account", "Value": "velero/velero-server"})


def ensure(proxy, via, *extra: str):
    proxy.reset()
    return run_cli([*ARGS, *extra], via)


def converged(proxy, via, eks, *extra: str):
    """Run once to create, and check that the role is right."""
    first = ensure(proxy, via, *extra)
    assert first.code == 0, first.stderr
    assert eks.trust(ROLE) == wanted_trust(eks)
    return first


def host(eks) -> str:
    return eks.issuer().removeprefix("https://")


def trust(provider_host: str, conditions: dict, sub: str = SUBJECT) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{provider_host}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": conditions,
            }
        ],
    }


def wanted_trust(eks) -> dict:
    h = host(eks)
    return trust(h, {"StringEquals": {f"{h}:sub": SUBJECT, f"{h}:aud": "sts.amazonaws.com"}})


def tags(items: list[dict]) -> dict:
    return {t["Key"]: t["Value"] for t in items}


def one_line_error(result) -> str:
    assert (result.code, result.stdout) == (1, b""), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- ownership ---------------------------------------------------------------------------------


def test_what_we_create_carries_the_ownership_tags(eks, proxy, via):
    result = converged(proxy, via, eks)
    assert proxy.writes == ["CreatePolicy", "CreateRole", "AttachRolePolicy"], result.stderr
    role_tags = tags(eks.iam.get_role(RoleName=ROLE)["Role"]["Tags"])
    policy_tags = tags(eks.iam.get_policy(PolicyArn=POLICY_ARN)["Policy"]["Tags"])
    assert role_tags == policy_tags == tags(OURS)


def test_a_converged_role_is_read_in_five_calls_and_never_written(eks, proxy, via):
    converged(proxy, via, eks)
    again = ensure(proxy, via, "-o", "json")
    assert again.code == 0, again.stderr
    assert (again.json["changes"], proxy.writes) == ([], [])
    assert len(proxy.calls) <= 5, [c.operation for c in proxy.calls]


def test_a_foreign_role_whose_trust_admits_the_server_is_used_read_only(eks, proxy, via):
    eks.iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(wanted_trust(eks)))
    result = ensure(proxy, via)
    assert result.code == 0, result.stderr
    assert result.stdout.decode().strip() == ROLE_ARN
    assert proxy.writes == []
    assert "not managed by velero-irsa; using it as it is (read-only)" in result.stderr
    assert eks.iam.get_role(RoleName=ROLE)["Role"].get("Tags", []) == []
    assert eks.iam.list_policies(Scope="Local")["Policies"] == []


def test_a_foreign_role_that_trusts_someone_else_is_refused_with_a_hint_to_adopt(eks, proxy, via):
    h = host(eks)
    other = trust(h, {"StringEquals": {f"{h}:sub": "system:serviceaccount:velero:other"}})
    eks.iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(other))
    line = one_line_error(ensure(proxy, via))
    assert "not managed by velero-irsa" in line and "--adopt" in line
    assert proxy.writes == []
    assert eks.trust(ROLE) == other


def test_adopt_takes_a_foreign_role_over_tags_it_and_converges_it(eks, proxy, via):
    h = host(eks)
    other = trust(h, {"StringLike": {f"{h}:sub": "system:serviceaccount:*"}})
    eks.iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(other), Tags=[{"Key": "team", "Value": "a"}])
    result = ensure(proxy, via, "--adopt", "-o", "json")
    assert result.code == 0, result.stderr
    assert f"adopt role {ROLE}" in result.json["changes"]
    assert f"update trust policy of role {ROLE}" in result.json["changes"]
    assert tags(eks.iam.get_role(RoleName=ROLE)["Role"]["Tags"]) == {"team": "a", **tags(OURS)}
    assert eks.trust(ROLE) == wanted_trust(eks)
    assert eks.attached(ROLE) == [POLICY_ARN]

    assert (ensure(proxy, via).code, proxy.writes) == (0, [])


def test_a_foreign_policy_with_other_permissions_is_refused_before_any_write(eks, proxy, via):
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    eks.iam.create_policy(PolicyName=POLICY_NAME, PolicyDocument=json.dumps(document))
    line = one_line_error(ensure(proxy, via))
    assert f"policy {POLICY_ARN} exists, is not managed by velero-irsa" in line and "--adopt" in line
    assert proxy.writes == []
    assert eks.iam.list_roles()["Roles"] == []


def test_a_foreign_policy_that_grants_exactly_our_permissions_is_attached_but_not_tagged(eks, proxy, via):
    converged(proxy, via, eks)
    document = eks.policy_document(POLICY_ARN)
    eks.iam.detach_role_policy(RoleName=ROLE, PolicyArn=POLICY_ARN)
    eks.iam.delete_policy(PolicyArn=POLICY_ARN)
    eks.iam.create_policy(PolicyName=POLICY_NAME, PolicyDocument=json.dumps(document))
    result = ensure(proxy, via)
    assert result.code == 0, result.stderr
    assert proxy.writes == ["AttachRolePolicy"]
    assert eks.iam.get_policy(PolicyArn=POLICY_ARN)["Policy"].get("Tags", []) == []


# -- drift on what we own ----------------------------------------------------------------------


def _drifted_trust(eks, kind: str) -> dict:
    h = host(eks)
    aud = {f"{h}:aud": "sts.amazonaws.com"}
    if kind == "wrong namespace":
        return trust(h, {"StringEquals": {f"{h}:sub": "system:serviceaccount:backup:velero-server", **aud}})
    if kind == "wrong service account":
        return trust(h, {"StringEquals": {f"{h}:sub": "system:serviceaccount:velero:default", **aud}})
    if kind == "StringLike wildcard":
        return trust(h, {"StringLike": {f"{h}:sub": "system:serviceaccount:velero:*", **aud}})
    if kind == "missing aud":
        return trust(h, {"StringEquals": {f"{h}:sub": SUBJECT}})
    other = "oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF"
    return trust(other, {"StringEquals": {f"{other}:sub": SUBJECT, f"{other}:aud": "sts.amazonaws.com"}})


@pytest.mark.parametrize(
    "kind", ["wrong namespace", "wrong service account", "StringLike wildcard", "missing aud", "other provider"]
)
def test_a_drifted_trust_policy_is_rewritten(kind, eks, proxy, via):
    converged(proxy, via, eks)
    eks.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(_drifted_trust(eks, kind)))

    result = ensure(proxy, via, "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json["changes"] == [f"update trust policy of role {ROLE}"]
    assert proxy.writes == ["UpdateAssumeRolePolicy"]
    assert eks.trust(ROLE) == wanted_trust(eks)
    assert (ensure(proxy, via).code, proxy.writes) == (0, [])


def test_no_create_reports_drift_in_one_line_and_repairs_nothing(eks, proxy, via):
    converged(proxy, via, eks)
    drifted = _drifted_trust(eks, "missing aud")
    eks.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(drifted))
    line = one_line_error(ensure(proxy, via, "--no-create"))
    assert "out of date and --no-create was given" in line and "--dry-run" in line
    assert proxy.writes == []
    assert eks.trust(ROLE) == drifted


def _edited(document: dict, kind: str) -> dict:
    edited = json.loads(json.dumps(document))
    if kind == "bucket changed":
        text = json.dumps(edited).replace(BUCKET, "someone-elses-bucket")
        return json.loads(text)
    objects = next(s for s in edited["Statement"] if s.get("Sid") == "VeleroObjects")
    if kind == "action removed":
        objects["Action"] = [a for a in objects["Action"] if a != "s3:DeleteObject"]
    else:
        objects["Action"] = [*objects["Action"], "s3:PutBucketPolicy"]
    return edited


@pytest.mark.parametrize("kind", ["bucket changed", "action removed", "action added"])
def test_a_hand_edited_policy_gets_a_new_default_version(kind, eks, proxy, via):
    converged(proxy, via, eks)
    wanted = eks.policy_document(POLICY_ARN)
    edited = _edited(wanted, kind)
    eks.iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(edited), SetAsDefault=True)

    result = ensure(proxy, via, "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json["changes"] == [f"update policy {POLICY_ARN}"]
    assert proxy.writes == ["CreatePolicyVersion"]
    assert eks.policy_document(POLICY_ARN) == wanted
    assert (ensure(proxy, via).code, proxy.writes) == (0, [])


def test_with_five_versions_the_oldest_non_default_one_is_deleted_first(eks, proxy, via):
    converged(proxy, via, eks)
    wanted = eks.policy_document(POLICY_ARN)
    for _ in range(4):
        edited = _edited(wanted, "action added")
        eks.iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(edited), SetAsDefault=True)

    result = ensure(proxy, via)
    assert result.code == 0, result.stderr
    assert proxy.writes == ["DeletePolicyVersion", "CreatePolicyVersion"]
    versions = eks.iam.list_policy_versions(PolicyArn=POLICY_ARN)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == ["v2", "v3", "v4", "v5", "v6"]
    assert eks.policy_document(POLICY_ARN) == wanted


def test_a_detached_policy_is_attached_again(eks, proxy, via):
    converged(proxy, via, eks)
    eks.iam.detach_role_policy(RoleName=ROLE, PolicyArn=POLICY_ARN)
    result = ensure(proxy, via)
    assert result.code == 0, result.stderr
    assert proxy.writes == ["AttachRolePolicy"]
    assert eks.attached(ROLE) == [POLICY_ARN]


def test_policies_attached_by_hand_are_named_in_a_warning_and_left_alone(eks, proxy, via):
    converged(proxy, via, eks)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}
    extra = eks.iam.create_policy(PolicyName="handmade", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    eks.iam.attach_role_policy(RoleName=ROLE, PolicyArn=extra)

    result = ensure(proxy, via)
    assert result.code == 0, result.stderr
    assert proxy.writes == []
    assert f"warning: role {ROLE} also has other policies attached, left alone: {extra}" in result.stderr
    assert sorted(eks.attached(ROLE)) == sorted([POLICY_ARN, extra])


def test_documents_are_compared_by_meaning_not_by_spelling(eks, proxy, via):
    converged(proxy, via, eks)
    document = eks.policy_document(POLICY_ARN)
    respelled = {
        "Statement": [
            {**s, "Action": list(reversed(s["Action"])) if len(s["Action"]) > 1 else s["Action"][0]}
            for s in reversed(document["Statement"])
        ],
        "Version": "2012-10-17",
    }
    eks.iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(respelled), SetAsDefault=True)
    statement = wanted_trust(eks)["Statement"][0]
    trust_respelled = {"Statement": {**statement, "Action": ["sts:AssumeRoleWithWebIdentity"]}, "Version": "2012-10-17"}
    eks.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(trust_respelled, indent=4))

    result = ensure(proxy, via, "-o", "json")
    assert result.code == 0, result.stderr
    assert (result.json["changes"], proxy.writes) == ([], [])


# -- eventual consistency ----------------------------------------------------------------------


def test_a_role_and_attachment_that_iam_does_not_show_yet_are_waited_for(eks, proxy, via):
    proxy.reset(
        faultproxy.Rule(faultproxy.NOT_YET, "GetRole", times=2, skip=1),
        faultproxy.Rule(faultproxy.NOT_YET, "AttachRolePolicy", times=2),
    )
    result = run_cli(ARGS, via)
    assert result.code == 0, result.stderr
    operations = [c.operation for c in proxy.calls]
    assert (operations.count("GetRole"), operations.count("AttachRolePolicy")) == (4, 3)
    assert eks.attached(ROLE) == [POLICY_ARN]
    assert (ensure(proxy, via).code, proxy.writes) == (0, [])


# -- dry run -----------------------------------------------------------------------------------


def test_dry_run_prints_each_change_with_its_diff_and_writes_nothing(eks, proxy, via):
    converged(proxy, via, eks)
    drifted = _drifted_trust(eks, "wrong namespace")
    eks.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(drifted))
    edited = _edited(eks.policy_document(POLICY_ARN), "bucket changed")
    eks.iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(edited), SetAsDefault=True)
    eks.iam.detach_role_policy(RoleName=ROLE, PolicyArn=POLICY_ARN)

    result = ensure(proxy, via, "--dry-run", "-o", "json")
    assert result.code == 0, result.stderr
    assert proxy.writes == []
    assert result.json["changes"] == [
        f"update policy {POLICY_ARN}",
        f"update trust policy of role {ROLE}",
        f"attach policy {POLICY_ARN} to role {ROLE}",
    ]
    err = result.stderr
    assert f"would update trust policy of role {ROLE}" in err
    assert "system:serviceaccount:backup:velero-server" in _removed(err)
    assert SUBJECT in _added(err)
    assert f"arn:aws:s3:::{BUCKET}" in _added(err) and "someone-elses-bucket" in _removed(err)
    plan = {entry["target"]: entry for entry in result.json["plan"]}
    assert plan[f"trust policy of role {ROLE}"]["after"] == wanted_trust(eks)
    assert eks.trust(ROLE) == drifted
    assert eks.attached(ROLE) == []


def _removed(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if line.startswith("velero-irsa:     -"))


def _added(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if line.startswith("velero-irsa:     +"))


def test_dry_run_on_an_empty_account_plans_everything_and_writes_nothing(aws, proxy, via):
    aws.create_cluster(provider=False)
    result = ensure(proxy, via, "--dry-run", "--create-oidc-provider", "--create-bucket", "-o", "json")
    assert result.code == 0, result.stderr
    assert proxy.writes == []
    assert [change.split(" ")[:2] for change in result.json["changes"]] == [
        ["create", "oidc-provider"],
        ["create", "bucket"],
        ["create", "policy"],
        ["create", "role"],
        ["attach", "policy"],
    ]
    assert aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert aws.client("s3").list_buckets()["Buckets"] == []


# -- the options users of eksctl and the Terraform module expect --------------------------------

BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/boundary"
KMS_KEY = f"arn:aws:kms:eu-central-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OPTIONS = {
    "role-path": "/velero/",
    "permissions-boundary": BOUNDARY,
    "tag": {"team": "platform", "cost-center": "42"},
    "max-session-duration": 7200,
    "kms-key-arn": [KMS_KEY],
    "bucket-prefix": "backups",
    "create-oidc-provider": True,
}


def _as_flags(options: dict) -> list[str]:
    flags = []
    for key, value in options.items():
        if value is True:
            flags.append(f"--{key}")
        elif isinstance(value, dict):
            flags += [item for k, v in value.items() for item in ("--tag", f"{k}={v}")]
        elif isinstance(value, list):
            flags += [item for v in value for item in (f"--{key}", v)]
        else:
            flags += [f"--{key}", str(value)]
    return flags


@pytest.mark.parametrize("source", ["flags", "config file"])
def test_every_role_option_is_read_back_from_iam(source, aws, proxy, via, tmp_path):
    issuer = aws.create_cluster(provider=False)
    aws.create_bucket()
    if source == "flags":
        extra = _as_flags(OPTIONS)
    else:
        config = tmp_path / "velero-irsa.yaml"
        config.write_text(yaml.safe_dump(OPTIONS))
        extra = ["--config", str(config)]
    result = ensure(proxy, via, "-o", "json", *extra)
    assert result.code == 0, result.stderr

    role = aws.iam.get_role(RoleName=ROLE)["Role"]
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/velero/{POLICY_NAME}"
    assert (role["Path"], role["Arn"]) == ("/velero/", f"arn:aws:iam::{ACCOUNT}:role/velero/{ROLE}")
    assert result.json["role_arn"] == role["Arn"] and result.json["policy_arn"] == policy_arn
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    assert role["MaxSessionDuration"] == 7200
    assert tags(role["Tags"]) == {"team": "platform", "cost-center": "42", **tags(OURS)}
    policy = aws.iam.get_policy(PolicyArn=policy_arn)["Policy"]
    assert policy["Path"] == "/velero/" and tags(policy["Tags"]) == tags(role["Tags"])
    assert aws.attached(ROLE) == [policy_arn]

    statements = {s["Sid"]: s for s in aws.policy_document(policy_arn)["Statement"]}
    assert statements["VeleroObjects"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/backups/*"]
    assert statements["VeleroKms"]["Resource"] == [KMS_KEY]
    assert "kms:GenerateDataKey*" in statements["VeleroKms"]["Action"]
    assert statements["VeleroKmsGrants"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}

    providers = aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    provider = aws.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=providers[0]["Arn"])
    assert issuer.endswith(provider["Url"]) and provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert tags(provider.get("Tags", []))[MANAGED["Key"]] == "velero-irsa"

    assert (ensure(proxy, via, *extra).code, proxy.writes) == (0, [])


def test_changed_role_options_are_applied_to_the_existing_role(eks, proxy, via):
    converged(proxy, via, eks, "--max-session-duration", "7200", "--tag", "team=platform")
    other_boundary = f"arn:aws:iam::{ACCOUNT}:policy/other-boundary"
    result = ensure(
        proxy, via, "--max-session-duration", "3600", "--tag", "team=storage", "--permissions-boundary", other_boundary
    )
    assert result.code == 0, result.stderr
    assert sorted(proxy.writes) == ["PutRolePermissionsBoundary", "TagPolicy", "TagRole", "UpdateRole"]
    role = eks.iam.get_role(RoleName=ROLE)["Role"]
    assert role["MaxSessionDuration"] == 3600
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == other_boundary
    assert tags(role["Tags"])["team"] == "storage"
    assert tags(eks.iam.get_policy(PolicyArn=POLICY_ARN)["Policy"]["Tags"])["team"] == "storage"


def test_a_role_path_that_iam_cannot_change_is_named_in_a_warning(eks, proxy, via):
    converged(proxy, via, eks)
    result = ensure(proxy, via, "--role-path", "/velero/")
    assert result.code == 0, result.stderr
    assert f"role {ROLE} stays at path /: IAM cannot move a role to /velero/" in result.stderr
    assert result.stdout.decode().strip() == ROLE_ARN
