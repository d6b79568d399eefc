"""Real Helm 3 runs our post-renderer over the Velero fixtures, against the moto server."""

import subprocess

import pytest
import yaml
from conftest import ACCOUNT, CLUSTER, fixture_bytes, helm_binary, replay_chart

from velero_irsa_postrender import stream

pytestmark = pytest.mark.helm
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/AWSIRSAprod-euveleroVelero"


def helm3(args, env, launcher):
    environment = {**env, "PATH": f"{launcher}:{env['PATH']}"}
    return subprocess.run([str(helm_binary(3)), *args], capture_output=True, env=environment, timeout=180, check=False)


def documents(raw: bytes) -> list[bytes]:
    return [d.raw for d in stream.split(raw) if not stream.is_blank(d)]


def service_account(raw: bytes, name: str) -> dict:
    for body in yaml.safe_load_all(raw):
        if body and body["kind"] == "ServiceAccount" and body["metadata"]["name"] == name:
            return body
    raise AssertionError(f"no ServiceAccount {name}")


@pytest.mark.parametrize(
    ("fixture", "account"), [("template-irsa.yaml", "velero-server"), ("template-custom-sa.yaml", "edp-velero")]
)
def test_helm_template_annotates_only_the_server_account(tmp_path, eks, env, launcher, fixture, account):
    chart = replay_chart(tmp_path, fixture_bytes(fixture))
    plain = helm3(["template", "velero", str(chart), "-n", "velero"], env, launcher)
    done = helm3(
        [
            "template",
            "velero",
            str(chart),
            "-n",
            "velero",
            "--post-renderer",
            "velero-irsa",
            "--post-renderer-args",
            f"--cluster={CLUSTER}",
        ],
        env,
        launcher,
    )
    assert done.returncode == 0, done.stderr.decode()

    annotated = service_account(done.stdout, account)
    assert annotated["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE_ARN
    original = service_account(plain.stdout, account)
    original.setdefault("metadata", {}).setdefault("annotations", {})["eks.amazonaws.com/role-arn"] = ROLE_ARN
    assert annotated == original

    before, after = documents(plain.stdout), documents(done.stdout)
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(before) == len(after) and len(changed) == 1
    assert f"name: {account}".encode() in after[changed[0]]

    host = eks.issuer().removeprefix("https://")
    role = eks.iam.get_role(RoleName="AWSIRSAprod-euveleroVelero")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"] == {
        f"{host}:sub": f"system:serviceaccount:velero:{account}",
        f"{host}:aud": "sts.amazonaws.com",
    }
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/AWSIRSAprod-euveleroVelero_policy"
    assert eks.attached("AWSIRSAprod-euveleroVelero") == [policy_arn]
    assert eks.policy_document(policy_arn)["Statement"][2]["Resource"] == ["arn:aws:s3:::velero-prod-eu"]


def test_without_post_renderer_args_env_settings_are_enough(tmp_path, eks, env, launcher):
    chart = replay_chart(tmp_path, fixture_bytes("template-irsa.yaml"))
    done = helm3(
        ["template", "velero", str(chart), "--post-renderer", "velero-irsa"],
        {**env, "VELERO_IRSA_CLUSTER": CLUSTER},
        launcher,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert service_account(done.stdout, "velero-server")["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": ROLE_ARN
    }


def test_a_failing_post_render_aborts_helm_with_our_message(tmp_path, env, launcher):
    chart = replay_chart(tmp_path, fixture_bytes("template-default.yaml"))
    done = helm3(
        [
            "template",
            "velero",
            str(chart),
            "--post-renderer",
            "velero-irsa",
            "--post-renderer-args",
            f"--role-arn={ROLE_ARN}",
        ],
        env,
        launcher,
    )
    assert done.returncode != 0
    assert done.stdout == b""
    assert b"credentials.useSecret=false" in done.stderr
