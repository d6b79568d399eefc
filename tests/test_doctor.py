"""velero-irsa doctor against the moto server: all ✔ on a healthy setup, exactly one ✘ per breakage.

The healthy setup is the real chart's IRSA render (plus podSecurityContext.fsGroup, as many installs
set it), post-rendered by velero-irsa, as `helm get manifest` would show it.
"""

import json

import pytest
from conftest import ACCOUNT, BUCKET, CLUSTER, fixture_bytes, run_cli

from velero_irsa_postrender.doctor import token_access

ROLE = "AWSIRSAprod-euveleroVelero"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
SERVER_POD = (
    b"      serviceAccountName: velero-server\n      automountServiceAccountToken: true\n"
    b"      terminationGracePeriodSeconds"
)
FS_GROUP = b"      securityContext:\n        fsGroup: 65534\n"
CREDENTIALS = b"            - name: AWS_SHARED_CREDENTIALS_FILE\n              value: /credentials/cloud\n"


def with_fs_group(manifest: bytes) -> bytes:
    assert manifest.count(SERVER_POD) == 1
    return manifest.replace(SERVER_POD, FS_GROUP + SERVER_POD)


def installed(env, *args: str) -> bytes:
    """What `helm get manifest` shows after an install through the post-renderer."""
    rendered = run_cli(
        ["post-render", "--cluster", CLUSTER, *args], env, stdin=with_fs_group(fixture_bytes("template-irsa.yaml"))
    )
    assert rendered.code == 0, rendered.stderr
    return rendered.stdout


def doctor(env, manifest: bytes, *args: str):
    return run_cli(["doctor", "--cluster", CLUSTER, *args, "-o", "json"], env, stdin=manifest)


def statuses(result) -> dict[str, str]:
    return {f"{row['check']} {row['target']}".strip(): row["status"] for row in result.json["checks"]}


def failing(result) -> list[str]:
    return [label for label, status in statuses(result).items() if status == "fail"]


@pytest.fixture
def healthy(eks, env) -> bytes:
    return installed(env)


def test_a_healthy_setup_is_all_ticks(eks, env, healthy):
    result = doctor(env, healthy)
    assert result.code == 0, result.stdout.decode() + result.stderr
    assert result.json["ok"] is True
    assert set(statuses(result).values()) == {"ok"}
    assert list(statuses(result)) == [
        "cluster prod-eu",
        "oidc-provider prod-eu",
        "role",
        "trust",
        "policy",
        f"bucket {BUCKET}",
        "credentials",
        "token",
        "annotation",
    ]

    table = run_cli(["doctor", "--cluster", CLUSTER], env, stdin=healthy)
    assert table.code == 0
    lines = table.stdout.decode().splitlines()
    assert len(lines) == 9 and all(line.startswith("✔ ") for line in lines)
    assert "velero-irsa:" not in table.stdout.decode()


def delete_role(aws, _manifest):
    aws.iam.detach_role_policy(RoleName=ROLE, PolicyArn=POLICY_ARN)
    aws.iam.delete_role(RoleName=ROLE)


def foreign_role(aws, _manifest):
    aws.iam.untag_role(RoleName=ROLE, TagKeys=["app.kubernetes.io/managed-by"])


def other_subject(aws, _manifest):
    trust = json.dumps(aws.trust(ROLE)).replace("velero:velero-server", "velero:someone-else")
    aws.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=trust)


def hand_edited_policy(aws, _manifest):
    document = aws.policy_document(POLICY_ARN)
    document["Statement"].append({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
    aws.iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(document), SetAsDefault=True)


def detached_policy(aws, _manifest):
    aws.iam.detach_role_policy(RoleName=ROLE, PolicyArn=POLICY_ARN)


def deleted_bucket(aws, _manifest):
    aws.client("s3").delete_bucket(Bucket=BUCKET)


def deleted_oidc_provider(aws, _manifest):
    for provider in aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        aws.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])


def static_credentials(_aws, manifest):
    anchor = b"            - name: LD_LIBRARY_PATH\n              value: /plugins\n"
    return manifest.replace(anchor, anchor + CREDENTIALS, 1)


def other_role_annotation(_aws, manifest):
    return manifest.replace(ROLE_ARN.encode(), f"arn:aws:iam::{ACCOUNT}:role/other".encode())


def malformed_annotation(_aws, manifest):
    return manifest.replace(ROLE_ARN.encode(), b"velero-role")


def no_annotation(_aws, manifest):
    return manifest.replace(f"  annotations:\n    eks.amazonaws.com/role-arn: {json.dumps(ROLE_ARN)}\n".encode(), b"")


@pytest.mark.parametrize(
    ("breakage", "row", "says"),
    [
        (deleted_oidc_provider, "oidc-provider prod-eu", "eksctl utils associate-iam-oidc-provider"),
        (delete_role, "role", f"role {ROLE} does not exist"),
        (foreign_role, "role", "not managed by velero-irsa"),
        (other_subject, "trust", "does not admit exactly system:serviceaccount:velero:velero-server"),
        (hand_edited_policy, "policy", "differs from what Velero needs"),
        (detached_policy, "policy", "is not attached"),
        (deleted_bucket, f"bucket {BUCKET}", "does not exist"),
        (static_credentials, "credentials", "credentials.useSecret=false"),
        (other_role_annotation, "annotation", "role/other"),
        (malformed_annotation, "annotation", "is not an IAM role ARN"),
        (no_annotation, "annotation", "no eks.amazonaws.com/role-arn"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_each_breakage_fails_exactly_its_row(eks, env, healthy, breakage, row, says):
    manifest = breakage(eks, healthy) or healthy
    result = doctor(env, manifest)
    assert result.code == 1, result.stderr
    assert result.json["ok"] is False
    assert failing(result) == [row]
    failed = next(r for r in result.json["checks"] if r["status"] == "fail")
    assert says in failed["detail"] + " " + failed["fix"]


def test_an_unknown_cluster_fails_its_row_and_skips_what_depends_on_it(eks, env, healthy):
    result = doctor(env, healthy, "--cluster", "elsewhere")
    assert result.code == 1
    assert failing(result) == ["cluster prod-eu elsewhere"]
    rows = statuses(result)
    assert rows["role"] == rows["trust"] == rows["policy"] == rows["annotation"] == "skip"


def test_the_table_puts_the_fix_under_a_failed_row(eks, env, healthy):
    deleted_bucket(eks, healthy)
    result = run_cli(["doctor", "--cluster", CLUSTER], env, stdin=healthy)
    assert result.code == 1
    lines = result.stdout.decode().splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("✘"))
    assert lines[failed].split()[1:3] == ["bucket", BUCKET]
    assert "fix: create it" in lines[failed + 1]


def test_without_manifests_only_aws_is_checked(eks, env, healthy, tmp_path):
    result = run_cli(["doctor", "--cluster", CLUSTER, "--bucket", BUCKET, "-o", "json"], env)
    assert result.code == 0, result.stdout
    rows = statuses(result)
    assert rows["credentials"] == rows["token"] == rows["annotation"] == "skip"
    assert rows["role"] == rows["policy"] == "ok"

    path = tmp_path / "installed.yaml"
    path.write_bytes(healthy)
    from_file = run_cli(["doctor", "--cluster", CLUSTER, "--manifest", str(path), "-o", "json"], env)
    assert from_file.code == 0 and set(statuses(from_file).values()) == {"ok"}


def test_doctor_makes_no_write_call(eks, env, healthy, stub_env, eks_stub):
    deleted_bucket(eks, healthy)
    result = doctor(stub_env, healthy)
    assert result.code == 1
    iam_calls = [call for call in eks_stub.calls if call.startswith("iam:")]
    assert iam_calls and all(call.split(":")[1].startswith(("Get", "List")) for call in iam_calls)


@pytest.mark.parametrize(
    ("pod", "container", "readable"),
    [
        ({"fsGroup": 1337}, {}, "group-owned by fsGroup 1337"),
        ({"runAsUser": 0}, {}, "owned by runAsUser 0"),
        ({"runAsUser": 0}, {"runAsUser": 1000}, "owned by runAsUser 1000"),
        ({}, {}, "mode 0644"),
    ],
)
def test_token_access_explains_which_kubelet_rule_applies(pod, container, readable):
    server = {"name": "velero", "command": ["/velero"], "args": ["server"], "securityContext": container}
    deployment = {"spec": {"template": {"spec": {"securityContext": pod, "containers": [server]}}}}
    assert token_access(deployment).startswith(readable)
