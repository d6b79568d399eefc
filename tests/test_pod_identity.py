"""--mode pod-identity end to end: the role trusts the EKS agent, an association names the ServiceAccount.

IAM, S3 and the cluster live in the moto server; the pod identity association calls (which moto 5.2
does not implement) are served by tests/eks_stub.py on 127.0.0.1, reached via AWS_ENDPOINT_URL_EKS.
"""

import pytest
import yaml
from conftest import ACCOUNT, BUCKET, CLUSTER, fixture_bytes, run_cli

from velero_irsa_postrender import podidentity
from velero_irsa_postrender.settings import Settings
from velero_irsa_postrender.values import values_yaml

ROLE = "AWSIRSAprod-euveleroVelero"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
ARGS = ["ensure-role", "--mode", "pod-identity", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ],
}
ASSOCIATION = "pod identity association velero/velero-server in cluster prod-eu"


def cluster_without_oidc_provider(aws):
    aws.create_cluster(provider=False)
    aws.create_bucket()


def association(eks_stub, namespace="velero", service_account="velero-server"):
    found = [
        a
        for a in eks_stub.associations.values()
        if (a["namespace"], a["serviceAccount"]) == (namespace, service_account)
    ]
    assert len(found) <= 1
    return found[0] if found else None


def plant(eks_stub, role_arn, tags=None, service_account="velero-server"):
    status, body = eks_stub.pod_identity(
        "POST",
        CLUSTER,
        None,
        {},
        {"namespace": "velero", "serviceAccount": service_account, "roleArn": role_arn, "tags": tags or {}},
    )
    assert status == 200, body


def test_first_run_creates_an_agent_trusting_role_and_the_association(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    result = run_cli([*ARGS, "-o", "json"], stub_env)
    assert result.code == 0, result.stderr

    assert result.json["changes"] == [
        f"create policy {POLICY_ARN}",
        f"create role {ROLE}",
        f"attach policy {POLICY_ARN} to role {ROLE}",
        f"create {ASSOCIATION}",
    ]
    assert aws.trust(ROLE) == TRUST
    assert aws.attached(ROLE) == [POLICY_ARN]
    found = association(eks_stub)
    assert (found["clusterName"], found["roleArn"]) == (CLUSTER, ROLE_ARN)
    assert found["tags"] == {"app.kubernetes.io/managed-by": "velero-irsa"}
    assert aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


def test_second_run_changes_nothing_and_writes_nothing(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    assert run_cli(ARGS, stub_env).code == 0
    eks_stub.calls.clear()

    again = run_cli([*ARGS, "-o", "json"], stub_env)
    assert again.code == 0, again.stderr
    assert again.json["changes"] == []
    writes = [c for c in eks_stub.calls if not c.split(":")[1].startswith(("Get", "List", "Describe", "GET "))]
    assert writes == []


def test_an_association_of_ours_naming_another_role_is_corrected(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    plant(eks_stub, f"arn:aws:iam::{ACCOUNT}:role/old", {"app.kubernetes.io/managed-by": "velero-irsa"})
    result = run_cli([*ARGS, "-o", "json"], stub_env)
    assert result.code == 0, result.stderr
    assert f"update {ASSOCIATION}" in result.json["changes"]
    assert association(eks_stub)["roleArn"] == ROLE_ARN


def test_a_foreign_association_is_only_changed_with_adopt(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    plant(eks_stub, f"arn:aws:iam::{ACCOUNT}:role/theirs")
    refused = run_cli(ARGS, stub_env)
    assert (refused.code, refused.stdout) == (1, b"")
    assert "was not created by velero-irsa" in refused.stderr and "--adopt" in refused.stderr
    assert association(eks_stub)["roleArn"].endswith("role/theirs")

    adopted = run_cli([*ARGS, "--adopt"], stub_env)
    assert adopted.code == 0, adopted.stderr
    assert association(eks_stub)["roleArn"] == ROLE_ARN


def test_no_create_refuses_a_missing_association(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    assert run_cli(ARGS, stub_env).code == 0
    eks_stub.associations.clear()
    result = run_cli([*ARGS, "--no-create"], stub_env)
    assert (result.code, result.stdout) == (1, b"")
    assert "missing or names another role" in result.stderr
    assert eks_stub.associations == {}


def test_dry_run_plans_the_association_and_creates_nothing(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    result = run_cli([*ARGS, "--dry-run", "-o", "json"], stub_env)
    assert result.code == 0, result.stderr
    assert result.json["changes"][-1] == f"create {ASSOCIATION}"
    assert f"would create {ASSOCIATION}" in result.stderr
    assert eks_stub.associations == {}
    assert aws.iam.list_roles()["Roles"] == []


def test_an_irsa_role_converges_to_pod_identity(eks, stub_env, eks_stub):
    assert run_cli(ARGS[:1] + ARGS[3:], stub_env).code == 0
    assert "Federated" in eks.trust(ROLE)["Statement"][0]["Principal"]

    switched = run_cli([*ARGS, "-o", "json"], stub_env)
    assert switched.code == 0, switched.stderr
    # The association comes first: had EKS refused it, the IRSA trust would still be in place.
    assert switched.json["changes"] == [f"create {ASSOCIATION}", f"update trust policy of role {ROLE}"]
    assert eks.trust(ROLE) == TRUST


def test_a_refused_association_leaves_the_irsa_trust_working(eks, stub_env, eks_stub):
    assert run_cli(ARGS[:1] + ARGS[3:], stub_env).code == 0
    irsa_trust = eks.trust(ROLE)
    eks_stub.deny.add("eks:CreatePodIdentityAssociation")

    refused = run_cli(ARGS, stub_env)
    assert (refused.code, refused.stdout) == (1, b"")
    assert "eks:CreatePodIdentityAssociation" in refused.stderr
    assert eks.trust(ROLE) == irsa_trust


def test_post_render_leaves_the_annotation_off_and_removes_a_stale_one(aws, stub_env, eks_stub):
    cluster_without_oidc_provider(aws)
    original = fixture_bytes("template-custom-sa.yaml")
    stale = original.replace(
        b"    team: platform\n", b"    team: platform\n    eks.amazonaws.com/role-arn: arn:aws:iam::1:role/old\n", 1
    )
    assert stale != original

    result = run_cli(["post-render", "--mode", "pod-identity", "--cluster", CLUSTER], stub_env, stdin=stale)
    assert result.code == 0, result.stderr
    assert result.stdout == original
    assert "removing the stale eks.amazonaws.com/role-arn" in result.stderr
    assert association(eks_stub, service_account="edp-velero")["roleArn"].endswith("role/AWSIRSAprod-euveleroVelero")

    clean = run_cli(["post-render", "--mode", "pod-identity", "--cluster", CLUSTER], stub_env, stdin=original)
    assert (clean.code, clean.stdout) == (0, original)
    assert "warning" not in clean.stderr
    sa = next(d for d in yaml.safe_load_all(clean.stdout) if d and d["kind"] == "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" not in sa["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("image", "supported"),
    [
        ("velero/velero-plugin-for-aws:v1.13.0", True),
        ("registry.example:5000/velero/velero-plugin-for-aws:v1.10.0-rc.1", True),
        ("velero/velero-plugin-for-aws:v1.9.2", False),
        ("velero/velero-plugin-for-aws:1.8", False),
        ("velero/velero-plugin-for-aws:latest", None),
        ("velero/velero-plugin-for-aws@sha256:" + "0" * 64, None),
    ],
)
def test_the_aws_plugin_version_decides_pod_identity_support(image, supported):
    assert podidentity.supports_pod_identity(image) is supported


def test_values_in_pod_identity_mode_carry_no_annotation():
    bare = yaml.safe_load(values_yaml(ROLE_ARN, Settings(mode="pod-identity")))
    assert bare == {"credentials": {"useSecret": False}}
    named = yaml.safe_load(values_yaml(ROLE_ARN, Settings(mode="pod-identity", service_account="edp-velero")))
    assert named["serviceAccount"] == {"server": {"name": "edp-velero"}}


def test_delete_role_without_the_mode_warns_that_associations_stay(eks, stub_env, eks_stub):
    assert run_cli(ARGS, stub_env).code == 0
    result = run_cli(["delete-role", "--cluster", CLUSTER, "--namespace", "velero", "--dry-run"], stub_env)
    assert result.code == 0, result.stderr
    assert f"role {ROLE} trusts EKS Pod Identity; its associations stay unless you pass --mode pod-identity" in (
        result.stderr
    )
