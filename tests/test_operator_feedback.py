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
    # as a release before superseded policies were detached would have left it
    eks.iam.attach_role_policy(RoleName=ROLE, PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy")

    result = run_cli(
        ["delete-role", "--cluster", CLUSTER, "--namespace", "velero", "--policy-name", "renamed-policy"], env
    )
    assert result.code == 0, result.stderr
    assert eks.iam.list_policies(Scope="Local")["Policies"] == []
    assert [r["RoleName"] for r in eks.iam.list_roles()["Roles"]] == []


def test_our_policy_from_an_earlier_name_is_detached_after_the_new_one_is_attached(eks, env):
    assert run_cli(ENSURE, env).code == 0
    result = run_cli([*ENSURE, "--policy-name", "renamed-policy", "-o", "json"], env)
    assert result.code == 0, result.stderr
    old = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
    new = f"arn:aws:iam::{ACCOUNT}:policy/renamed-policy"
    assert result.json["changes"][-2:] == [
        f"attach policy {new} to role {ROLE}",
        f"detach superseded policy {old} from role {ROLE}",
    ]
    assert eks.attached(ROLE) == [new]

    hand_made = eks.iam.create_policy(PolicyName="hand-made", PolicyDocument=json.dumps(eks.policy_document(new)))
    eks.iam.attach_role_policy(RoleName=ROLE, PolicyArn=hand_made["Policy"]["Arn"])
    again = run_cli([*ENSURE, "--policy-name", "renamed-policy"], env)
    assert f"also has other policies attached, left alone: {hand_made['Policy']['Arn']}" in again.stderr


def test_no_create_with_adopt_never_writes_not_even_a_tag(eks, env):
    assert run_cli(ENSURE, env).code == 0
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
    eks.iam.untag_policy(PolicyArn=policy_arn, TagKeys=["app.kubernetes.io/managed-by"])

    result = run_cli([*ENSURE, "--no-create", "--adopt"], env)
    assert (result.code, result.stdout) == (1, b"")
    assert "--no-create" in result.stderr
    tags = eks.iam.get_policy(PolicyArn=policy_arn)["Policy"].get("Tags", [])
    assert "app.kubernetes.io/managed-by" not in [t["Key"] for t in tags]


def test_doctor_uses_helm_namespace_like_ensure_role(eks, env):
    helm_env = {**env, "HELM_NAMESPACE": "backup"}
    assert run_cli(["ensure-role", "--cluster", CLUSTER, "--bucket", BUCKET], helm_env).code == 0
    result = run_cli(["doctor", "--cluster", CLUSTER, "--bucket", BUCKET, "-o", "json"], helm_env)
    assert result.code == 0, result.stdout.decode() + result.stderr
    assert "AWSIRSAprod-eubackupVelero" in result.stdout.decode()


def test_only_the_first_word_routes_so_an_option_value_cannot_divert_a_render():
    from velero_irsa_postrender.cli import route

    assert route(["-n", "doctor", "--role-arn", "x"], stdin_is_tty=False)[0] == "post-render"
    assert route(["ensure-role", "--dry-run"], stdin_is_tty=False) == ["ensure-role", "--dry-run"]
    assert route(["ensur-role"], stdin_is_tty=False) == ["ensur-role"]
    assert route([], stdin_is_tty=False) == ["post-render"]
    assert route([], stdin_is_tty=True) == []


def test_a_bare_403_from_s3_names_the_denied_action():
    import pytest
    from botocore.exceptions import ClientError

    from velero_irsa_postrender.aws import translated
    from velero_irsa_postrender.errors import AwsError

    denied = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")
    with pytest.raises(AwsError, match=r"s3:ListBucket was denied"), translated("check bucket b", "s3:ListBucket"):
        raise denied


def test_without_a_configured_region_post_render_uses_the_locations_region(eks, env):
    no_region = {key: value for key, value in env.items() if key != "AWS_REGION"}
    result = run_cli(["--cluster", CLUSTER], no_region, fixture_bytes("template-irsa.yaml"))
    assert result.code == 0, result.stderr
    assert "using the backup bucket's region eu-central-1" in result.stderr
    assert f"arn:aws:iam::{ACCOUNT}:role/{ROLE}".encode() in result.stdout


def test_under_helm4_a_warning_reaches_the_error_log_too(eks, env, tmp_path):
    eks.create_bucket("velero-shared")
    state = tmp_path / "state"
    helm4 = {**env, "HELM_PLUGIN_NAME": "velero-irsa-postrenderer", "XDG_STATE_HOME": str(state)}
    result = run_cli(["--cluster", CLUSTER, "--bucket", "velero-shared"], helm4, fixture_bytes("template-irsa.yaml"))
    assert result.code == 0, result.stderr
    logged = (state / "velero-irsa" / "error.log").read_text()
    assert "warning: --bucket replaces the BackupStorageLocations' buckets" in logged


def test_create_false_in_the_environment_keeps_a_render_read_only(eks, env):
    result = run_cli(
        ["--cluster", CLUSTER], {**env, "VELERO_IRSA_CREATE": "false"}, fixture_bytes("template-irsa.yaml")
    )
    assert (result.code, result.stdout) == (1, b"")
    assert "--no-create" in result.stderr
    assert eks.iam.list_roles()["Roles"] == []
