"""velero-irsa doctor --mode pod-identity: the association, the agent trust, the plugin version.

The pod identity association calls go to tests/eks_stub.py (moto 5.2 lacks them); the rest to moto.
"""

import json

import pytest
from conftest import ACCOUNT, CLUSTER, fixture_bytes, run_cli
from test_doctor import failing, statuses, with_fs_group

ROLE = "AWSIRSAprod-euveleroVelero"
PLUGIN = b"velero/velero-plugin-for-aws:v1.13.0"


@pytest.fixture
def installed(aws, stub_env) -> bytes:
    aws.create_cluster(provider=False)
    aws.create_bucket()
    manifest = with_fs_group(fixture_bytes("template-irsa.yaml"))
    rendered = run_cli(["post-render", "--mode", "pod-identity", "--cluster", CLUSTER], stub_env, stdin=manifest)
    assert rendered.code == 0, rendered.stderr
    return rendered.stdout


def doctor(env, manifest: bytes):
    return run_cli(["doctor", "--mode", "pod-identity", "--cluster", CLUSTER, "-o", "json"], env, stdin=manifest)


def test_a_healthy_pod_identity_setup_is_all_ticks(stub_env, installed):
    result = doctor(stub_env, installed)
    assert result.code == 0, result.stdout.decode() + result.stderr
    assert list(statuses(result).items()) == [
        ("cluster prod-eu", "ok"),
        ("role", "ok"),
        ("trust", "ok"),
        ("policy", "ok"),
        ("bucket velero-prod-eu", "ok"),
        ("association prod-eu", "ok"),
        ("credentials", "ok"),
        ("token", "ok"),
        ("annotation", "ok"),
        ("plugin", "ok"),
    ]
    plugin = result.json["checks"][-1]
    assert "v1.10.0 or later" in plugin["detail"]


def test_a_missing_association_fails_its_row(stub_env, installed, eks_stub):
    eks_stub.associations.clear()
    result = doctor(stub_env, installed)
    assert result.code == 1
    assert failing(result) == ["association prod-eu"]


def test_an_association_naming_another_role_fails_its_row(stub_env, installed, eks_stub):
    for association in eks_stub.associations.values():
        association["roleArn"] = f"arn:aws:iam::{ACCOUNT}:role/other"
    result = doctor(stub_env, installed)
    assert failing(result) == ["association prod-eu"]


def test_an_old_aws_plugin_fails_the_plugin_row_and_names_the_version(stub_env, installed):
    result = doctor(stub_env, installed.replace(PLUGIN, b"velero/velero-plugin-for-aws:v1.9.2"))
    assert result.code == 1
    assert failing(result) == ["plugin"]
    assert "v1.10.0 or later" in result.json["checks"][-1]["fix"]


def test_a_stale_role_arn_annotation_fails_the_annotation_row(stub_env, installed):
    anchor = b"kind: ServiceAccount\nmetadata:\n  name: velero-server\n  namespace: velero\n"
    assert installed.count(anchor) == 1
    stale = installed.replace(
        anchor, anchor + b"  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::1:role/x\n"
    )
    result = doctor(stub_env, stale)
    assert failing(result) == ["annotation"]


def test_a_trust_without_the_agent_fails_the_trust_row(aws, stub_env, installed):
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    aws.iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(document))
    result = doctor(stub_env, installed)
    assert failing(result) == ["trust"]
