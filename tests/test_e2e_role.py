"""ensure-role against a moto server over HTTP: what IAM really holds afterwards."""

from conftest import ACCOUNT, BUCKET, CLUSTER, run_cli

ROLE = "AWSIRSAprod-euveleroVelero"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{ROLE}_policy"
ARGS = ["ensure-role", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET]


def test_first_run_creates_role_policy_and_attachment(eks, env):
    result = run_cli([*ARGS, "-o", "json"], env)
    assert result.code == 0, result.stderr

    data = result.json
    assert data["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    assert data["policy_arn"] == POLICY_ARN
    assert data["trust_subject"] == "system:serviceaccount:velero:velero-server"
    assert data["changes"] == [
        f"create policy {POLICY_ARN}",
        f"create role {ROLE}",
        f"attach policy {POLICY_ARN} to role {ROLE}",
    ]

    host = eks.issuer().removeprefix("https://")
    statement = eks.trust(ROLE)["Statement"]
    assert statement == [
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{host}:sub": "system:serviceaccount:velero:velero-server",
                    f"{host}:aud": "sts.amazonaws.com",
                }
            },
        }
    ]
    assert eks.attached(ROLE) == [POLICY_ARN]
    resources = [s["Resource"] for s in eks.policy_document(POLICY_ARN)["Statement"]]
    assert resources == ["*", [f"arn:aws:s3:::{BUCKET}/*"], [f"arn:aws:s3:::{BUCKET}"]]


def test_second_run_changes_nothing_and_prints_the_arn(eks, env):
    assert run_cli(ARGS, env).code == 0
    again = run_cli([*ARGS, "-o", "json"], env)
    assert again.code == 0, again.stderr
    assert again.json["changes"] == []
    assert run_cli(ARGS, env).stdout == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}\n".encode()


def test_dry_run_reports_the_plan_and_creates_nothing(eks, env):
    result = run_cli([*ARGS, "--dry-run", "-o", "json"], env)
    assert result.code == 0, result.stderr
    assert "would create role" in result.stderr
    assert len(result.json["changes"]) == 3
    assert eks.iam.list_roles()["Roles"] == []
    assert eks.iam.list_policies(Scope="Local")["Policies"] == []


def test_missing_oidc_provider_says_how_to_create_it(aws, env):
    aws.create_cluster(provider=False)
    aws.create_bucket()
    result = run_cli(ARGS, env)
    assert (result.code, result.stdout) == (1, b"")
    assert "eksctl utils associate-iam-oidc-provider --cluster prod-eu --approve" in result.stderr
    assert aws.iam.list_roles()["Roles"] == []


def test_create_oidc_provider_flag_creates_it_with_the_sts_audience(aws, env):
    issuer = aws.create_cluster(provider=False)
    aws.create_bucket()
    result = run_cli([*ARGS, "--create-oidc-provider"], env)
    assert result.code == 0, result.stderr
    providers = aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert len(providers) == 1
    found = aws.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=providers[0]["Arn"])
    assert found["ClientIDList"] == ["sts.amazonaws.com"]
    assert issuer.endswith(found["Url"])


def test_missing_bucket_is_an_error_unless_create_bucket(aws, env):
    aws.create_cluster()
    result = run_cli(ARGS, env)
    assert (result.code, result.stdout) == (1, b"")
    assert f"bucket {BUCKET} does not exist" in result.stderr and "--create-bucket" in result.stderr

    created = run_cli([*ARGS, "--create-bucket"], env)
    assert created.code == 0, created.stderr
    assert BUCKET in [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]]


def test_unknown_cluster_is_a_one_line_error(aws, env):
    result = run_cli(ARGS, env)
    assert (result.code, result.stdout) == (1, b"")
    assert "EKS cluster prod-eu not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_oidc_issuer_and_account_id_skip_eks(aws, env):
    issuer = "https://oidc.eks.eu-central-1.amazonaws.com/id/GIVEN"
    aws.create_provider(issuer)
    aws.create_bucket()
    result = run_cli([*ARGS, "--oidc-issuer", issuer, "--account-id", ACCOUNT, "-o", "json"], env)
    assert result.code == 0, result.stderr
    condition = aws.trust(ROLE)["Statement"][0]["Condition"]["StringEquals"]
    assert condition["oidc.eks.eu-central-1.amazonaws.com/id/GIVEN:sub"] == "system:serviceaccount:velero:velero-server"


def test_values_prints_a_snippet_for_helm(eks, env):
    result = run_cli(["values", "--cluster", CLUSTER, "--bucket", BUCKET], env)
    assert result.code == 0, result.stderr
    import yaml

    assert yaml.safe_load(result.stdout) == {
        "serviceAccount": {
            "server": {"annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"}}
        },
        "credentials": {"useSecret": False},
    }


def test_helm_namespace_is_the_default_namespace(eks, env):
    result = run_cli(
        ["ensure-role", "--cluster", CLUSTER, "--bucket", BUCKET, "-o", "json"], {**env, "HELM_NAMESPACE": "backup"}
    )
    assert result.code == 0, result.stderr
    assert result.json["trust_subject"] == "system:serviceaccount:backup:velero-server"
    assert result.json["role_name"] == "AWSIRSAprod-eubackupVelero"
