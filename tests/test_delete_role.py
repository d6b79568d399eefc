"""velero-irsa delete-role against the moto server: nothing of ours is left, nothing else is touched."""

import json

from conftest import ACCOUNT, BUCKET, CLUSTER, run_cli

ROLE = "AWSIRSAprod-euveleroVelero"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
ENSURE = ["ensure-role", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET]
DELETE = ["delete-role", "--cluster", CLUSTER, "--namespace", "velero"]
S3_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)


def role_names(aws) -> list[str]:
    return sorted(r["RoleName"] for r in aws.iam.list_roles()["Roles"])


def local_policies(aws) -> list[str]:
    return sorted(p["PolicyName"] for p in aws.iam.list_policies(Scope="Local")["Policies"])


def test_delete_role_leaves_nothing_of_ours_and_keeps_buckets_and_providers(eks, env):
    eks.create_bucket("velero-second")
    assert run_cli(ENSURE, env).code == 0
    assert run_cli([*ENSURE[:-1], "velero-second"], env).code == 0  # a second policy version
    eks.iam.create_role(RoleName="someone-else", AssumeRolePolicyDocument=TRUST)

    result = run_cli(DELETE, env)
    assert result.code == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        f"detach policy {POLICY_ARN} from role {ROLE}",
        f"delete version v1 of policy {POLICY_ARN}",
        f"delete policy {POLICY_ARN}",
        f"delete role {ROLE}",
    ]
    assert role_names(eks) == ["someone-else"]
    assert local_policies(eks) == []
    assert sorted(b["Name"] for b in eks.client("s3").list_buckets()["Buckets"]) == [BUCKET, "velero-second"]
    assert len(eks.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1

    again = run_cli(DELETE, env)
    assert (again.code, again.stdout) == (0, b"")
    assert "nothing of velero-irsa's to delete" in again.stderr


def test_dry_run_prints_the_plan_and_deletes_nothing(eks, env):
    assert run_cli(ENSURE, env).code == 0
    result = run_cli([*DELETE, "--dry-run", "-o", "json"], env)
    assert result.code == 0, result.stderr
    assert result.json == {
        "role_name": ROLE,
        "dry_run": True,
        "steps": [f"detach policy {POLICY_ARN} from role {ROLE}", f"delete policy {POLICY_ARN}", f"delete role {ROLE}"],
        "kept": [],
    }
    assert f"would delete role {ROLE}" in result.stderr
    assert role_names(eks) == [ROLE]
    assert local_policies(eks) == [f"{ROLE}_policy"]


def test_a_role_without_our_tag_is_refused_and_left_alone(aws, env):
    aws.iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=TRUST)
    result = run_cli(DELETE, env)
    assert (result.code, result.stdout) == (1, b"")
    assert f"role {ROLE} is not managed by velero-irsa" in result.stderr
    assert role_names(aws) == [ROLE]


def test_a_foreign_policy_on_our_role_is_detached_but_kept(eks, env):
    assert run_cli(ENSURE, env).code == 0
    theirs = eks.iam.create_policy(PolicyName="theirs", PolicyDocument=S3_ALL)
    eks.iam.attach_role_policy(RoleName=ROLE, PolicyArn=theirs["Policy"]["Arn"])

    result = run_cli(DELETE, env)
    assert result.code == 0, result.stderr
    assert role_names(eks) == []
    assert local_policies(eks) == ["theirs"]


def test_our_policy_attached_elsewhere_stops_the_run_before_any_delete(eks, env):
    assert run_cli(ENSURE, env).code == 0
    eks.iam.create_role(RoleName="someone-else", AssumeRolePolicyDocument=TRUST)
    eks.iam.attach_role_policy(RoleName="someone-else", PolicyArn=POLICY_ARN)

    result = run_cli(DELETE, env)
    assert (result.code, result.stdout) == (1, b"")
    assert "also attached to role someone-else" in result.stderr
    assert role_names(eks) == sorted([ROLE, "someone-else"])
    assert eks.attached(ROLE) == [POLICY_ARN]


def test_an_inline_policy_on_our_role_stops_the_run(eks, env):
    assert run_cli(ENSURE, env).code == 0
    eks.iam.put_role_policy(RoleName=ROLE, PolicyName="by-hand", PolicyDocument=S3_ALL)
    result = run_cli(DELETE, env)
    assert (result.code, result.stdout) == (1, b"")
    assert "inline policy by-hand" in result.stderr
    assert role_names(eks) == [ROLE]


def test_pod_identity_mode_deletes_our_association_too(aws, stub_env, eks_stub):
    aws.create_cluster(provider=False)
    aws.create_bucket()
    assert run_cli([*ENSURE, "--mode", "pod-identity"], stub_env).code == 0
    assert len(eks_stub.associations) == 1

    result = run_cli([*DELETE, "--mode", "pod-identity"], stub_env)
    assert result.code == 0, result.stderr
    assert result.stdout.decode().splitlines()[0] == (
        "delete pod identity association velero/velero-server in cluster prod-eu"
    )
    assert eks_stub.associations == {}
    assert role_names(aws) == []


def test_a_missing_delete_permission_names_the_iam_action(eks, stub_env, eks_stub):
    assert run_cli(ENSURE, stub_env).code == 0
    eks_stub.deny.add("iam:DeleteRole")
    result = run_cli(DELETE, stub_env)
    assert (result.code, result.stdout) == (1, b"")
    assert "iam:DeleteRole was denied" in result.stderr
    assert "grant the caller iam:DeleteRole" in result.stderr
