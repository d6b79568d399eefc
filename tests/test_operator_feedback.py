"""What a first-time user tripped over: each case now says what happened, or cleans up after itself."""

import json

from conftest import ACCOUNT, BUCKET, CLUSTER, fixture_bytes, run_cli

ROLE = "AWSIRSAprod-euveleroVelero"
ENSURE = ["ensure-role", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET]


def test_a_created_oidc_provider_and_bucket_are_said_on_stderr(aws, env):
    aws.create_cluster(provider=False)
    result = run_cli([*ENSURE, "--create-oidc-provider", "--create-bucket"], env)
    assert result.code == 0, result.stderr
    assert "velero-irsa: Create oidc-provider arn:aws:iam::" in result.stderr
    assert f"velero-irsa: Create bucket {BUCKET}" in result.stderr


def test_the_dry_run_plan_names_the_provider_and_bucket_it_would_create(aws, env):
    aws.create_cluster(provider=False)
    result = run_cli([*ENSURE, "--create-oidc-provider", "--create-bucket", "--dry-run"], env)
    assert result.code == 0, result.stderr
    assert "would create oidc-provider" in result.stderr and f"would create bucket {BUCKET}" in result.stderr
    assert aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


def test_bucket_flag_that_replaces_the_rendered_buckets_warns(eks, env):
    eks.create_bucket("velero-shared")
    result = run_cli(["--cluster", CLUSTER, "--bucket", "velero-shared"], env, fixture_bytes("template-irsa.yaml"))
    assert result.code == 0, result.stderr
    assert "--bucket replaces the BackupStorageLocations' buckets: the role will not reach velero-prod-eu" in (
        result.stderr
    )


def test_a_foreign_role_without_our_policy_is_used_with_a_warning_and_no_policy_arn(eks, env):
    assert run_cli(ENSURE, env).code == 0
    trust = eks.trust(ROLE)
    eks.iam.create_role(RoleName="foreign-exact", AssumeRolePolicyDocument=json.dumps(trust))
    result = run_cli([*ENSURE, "--role-name", "foreign-exact", "-o", "json"], env)
    assert result.code == 0, result.stderr
    assert result.json["policy_arn"] is None and result.json["changes"] == []
    assert "role foreign-exact does not have" in result.stderr and "(attached: none)" in result.stderr
    assert eks.attached("foreign-exact") == []


def test_helm_namespace_default_warns_that_velero_rarely_lives_there(eks, env):
    result = run_cli(
        ["ensure-role", "--cluster", CLUSTER, "--bucket", BUCKET, "--dry-run"], {**env, "HELM_NAMESPACE": "default"}
    )
    assert result.code == 0, result.stderr
    assert "namespace `default` comes from HELM_NAMESPACE" in result.stderr


def test_delete_role_also_removes_our_policies_from_earlier_names(eks, env):
    assert run_cli(ENSURE, env).code == 0
    assert run_cli([*ENSURE, "--policy-name", "renamed-policy"], env).code == 0
    assert len(eks.attached(ROLE)) == 2

    result = run_cli(
        ["delete-role", "--cluster", CLUSTER, "--namespace", "velero", "--policy-name", "renamed-policy"], env
    )
    assert result.code == 0, result.stderr
    assert eks.iam.list_policies(Scope="Local")["Policies"] == []
    assert [r["RoleName"] for r in eks.iam.list_roles()["Roles"]] == []


def test_a_policy_from_an_earlier_name_is_called_other_not_hand_made(eks, env):
    assert run_cli(ENSURE, env).code == 0
    result = run_cli([*ENSURE, "--policy-name", "renamed-policy"], env)
    assert result.code == 0, result.stderr
    old = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
    assert f"also has other policies attached, left alone: {old}" in result.stderr
