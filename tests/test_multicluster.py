"""One role trusted by several clusters: a statement per cluster, converging as clusters come and go.

Moto gives every EKS cluster the same issuer, so these tests pass each cluster's issuer with
--oidc-issuer (repeated, in the order of --cluster) instead of letting eks:DescribeCluster find it.
"""

from conftest import ACCOUNT, BUCKET, run_cli

ROLE = "AWSIRSAeu-aveleroVelero"
SUBJECT = "system:serviceaccount:velero:velero-server"
ISSUERS = {
    name: f"https://oidc.eks.eu-central-1.amazonaws.com/id/{name.upper().replace('-', '')}{'0' * 24}"
    for name in ("eu-a", "eu-b", "eu-c", "eu-d", "eu-e")
}


def args(*clusters: str) -> list[str]:
    words = ["ensure-role", "--namespace", "velero", "--bucket", BUCKET, "--account-id", ACCOUNT]
    for cluster in clusters:
        words += ["--cluster", cluster]
    for cluster in clusters:
        words += ["--oidc-issuer", ISSUERS[cluster]]
    return words


def prepare(aws, *clusters: str) -> None:
    aws.create_bucket()
    for cluster in clusters:
        aws.create_provider(ISSUERS[cluster])


def statement_for(cluster: str) -> dict:
    host = ISSUERS[cluster].removeprefix("https://")
    return {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": SUBJECT, f"{host}:aud": "sts.amazonaws.com"}},
    }


def test_two_clusters_share_one_role_with_a_statement_each(aws, env):
    prepare(aws, "eu-a", "eu-b")
    result = run_cli([*args("eu-a", "eu-b"), "-o", "json"], env)
    assert result.code == 0, result.stderr
    assert result.json["role_name"] == ROLE
    assert aws.trust(ROLE)["Statement"] == [statement_for("eu-a"), statement_for("eu-b")]
    tags = {t["Key"]: t["Value"] for t in aws.iam.get_role(RoleName=ROLE)["Role"]["Tags"]}
    assert tags["velero-irsa/cluster"] == "eu-a eu-b"
    assert "warning" not in result.stderr


def test_adding_and_removing_a_cluster_converges_the_trust(aws, env):
    prepare(aws, "eu-a", "eu-b")
    assert run_cli(args("eu-a"), env).code == 0
    assert aws.trust(ROLE)["Statement"] == [statement_for("eu-a")]

    added = run_cli([*args("eu-a", "eu-b"), "-o", "json"], env)
    assert added.code == 0, added.stderr
    assert f"update trust policy of role {ROLE}" in added.json["changes"]
    assert aws.trust(ROLE)["Statement"] == [statement_for("eu-a"), statement_for("eu-b")]

    unchanged = run_cli([*args("eu-a", "eu-b"), "-o", "json"], env)
    assert unchanged.json["changes"] == []

    removed = run_cli([*args("eu-a"), "-o", "json"], env)
    assert removed.code == 0, removed.stderr
    assert f"update trust policy of role {ROLE}" in removed.json["changes"]
    assert aws.trust(ROLE)["Statement"] == [statement_for("eu-a")]


def test_clusters_and_issuers_as_lists_in_the_config_file(aws, env, tmp_path):
    prepare(aws, "eu-a", "eu-b")
    config = tmp_path / "velero-irsa.yaml"
    config.write_text(
        f"cluster: [eu-a, eu-b]\noidc-issuer:\n  - {ISSUERS['eu-a']}\n  - {ISSUERS['eu-b']}\n"
        f"account-id: '{ACCOUNT}'\nnamespace: velero\nbucket: {BUCKET}\n"
    )
    result = run_cli(["ensure-role", "--config", str(config)], env)
    assert result.code == 0, result.stderr
    assert aws.trust(ROLE)["Statement"] == [statement_for("eu-a"), statement_for("eu-b")]


def test_one_issuer_for_two_clusters_is_refused(aws, env):
    prepare(aws, "eu-a", "eu-b")
    words = args("eu-a", "eu-b")
    assert words[-2:] == ["--oidc-issuer", ISSUERS["eu-b"]]
    result = run_cli(words[:-2], env)
    assert (result.code, result.stdout) == (1, b"")
    assert "2 cluster(s) but 1 --oidc-issuer" in result.stderr
    assert aws.iam.list_roles()["Roles"] == []


def test_a_trust_policy_near_or_over_the_quota_is_warned_about_before_writing(aws, env):
    prepare(aws, *ISSUERS)
    four = run_cli([*args("eu-a", "eu-b", "eu-c", "eu-d"), "--dry-run"], env)
    assert four.code == 0, four.stderr
    assert "of IAM's default 2048 characters" in four.stderr

    five = run_cli([*args(*ISSUERS), "--dry-run"], env)
    assert five.code == 0, five.stderr
    assert "over IAM's default quota of 2048" in five.stderr
    assert "'Role trust policy length' quota for IAM in Service Quotas" in five.stderr


def test_doctor_checks_every_cluster_of_the_role(aws, env):
    prepare(aws, "eu-a", "eu-b")
    assert run_cli(args("eu-a", "eu-b"), env).code == 0
    doctor = ["doctor", "-o", "json", *args("eu-a", "eu-b")[1:]]
    result = run_cli(doctor, env)
    assert result.code == 0, result.stdout
    rows = [(row["check"], row["target"], row["status"]) for row in result.json["checks"]][:5]
    assert rows == [
        ("cluster", "eu-a", "ok"),
        ("cluster", "eu-b", "ok"),
        ("oidc-provider", "eu-a", "ok"),
        ("oidc-provider", "eu-b", "ok"),
        ("role", "", "ok"),
    ]

    one_of_two = run_cli(["doctor", "-o", "json", *args("eu-a")[1:]], env)
    trust = next(row for row in one_of_two.json["checks"] if row["check"] == "trust")
    assert trust["status"] == "fail" and "pass every --cluster the role serves" in trust["fix"]

    only_a = run_cli(args("eu-a"), env)
    assert only_a.code == 0
    drifted = run_cli(doctor, env)
    assert drifted.code == 1
    trust = next(row for row in drifted.json["checks"] if row["check"] == "trust")
    assert trust["status"] == "fail" and "from cluster eu-b" in trust["detail"]


def test_delete_role_keeps_a_role_another_cluster_still_uses(aws, env):
    prepare(aws, "eu-a", "eu-b")
    assert run_cli(args("eu-a", "eu-b"), env).code == 0
    delete = ["delete-role", "--namespace", "velero", "--account-id", ACCOUNT]

    refused = run_cli([*delete, "--cluster", "eu-a", "--oidc-issuer", ISSUERS["eu-a"]], env)
    assert (refused.code, refused.stdout) == (1, b"")
    assert "also serves cluster eu-b" in refused.stderr
    assert aws.iam.get_role(RoleName=ROLE)["Role"]["RoleName"] == ROLE

    both = [
        "--cluster",
        "eu-a",
        "--cluster",
        "eu-b",
        "--oidc-issuer",
        ISSUERS["eu-a"],
        "--oidc-issuer",
        ISSUERS["eu-b"],
    ]
    done = run_cli([*delete, *both], env)
    assert done.code == 0, done.stderr
    assert aws.iam.list_roles()["Roles"] == []
