"""Faults between ensure-role and IAM: throttling, 500s, connection resets, a kill after every write, races.

Whatever happens to one run, the next run must converge and the one after must write nothing.
The fault proxy (tests/faultproxy.py) sits between the CLI and moto on 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import ACCOUNT, BUCKET, CLUSTER, run_cli
from faultproxy import KILL_AFTER, RESET_AFTER, RESET_BEFORE, SERVER_ERROR, THROTTLE, Rule

from velero_irsa_postrender import policy
from velero_irsa_postrender.velero import Bucket

ROLE = "AWSIRSAprod-euveleroVelero"
POLICY_NAME = f"{ROLE}_policy"
POLICY_ARN = f"arn:aws:iam::{ACCOUNT}:policy/{POLICY_NAME}"
SUBJECT = "system:serviceaccount:velero:velero-server"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/boundary"
ARGS = ["ensure-role", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET]

# From nothing: provider, bucket, policy, role, attachment.
FRESH = [*ARGS, "--create-oidc-provider", "--create-bucket"]
FRESH_WRITES = ["CreateOpenIDConnectProvider", f"PUT /{BUCKET}", "CreatePolicy", "CreateRole", "AttachRolePolicy"]
# A hand-made role and policy, both wrong, adopted and repaired.
REPAIR = [*ARGS, "--adopt", "--max-session-duration", "7200", "--permissions-boundary", BOUNDARY]
REPAIR_WRITES = [
    "TagPolicy",
    "DeletePolicyVersion",
    "CreatePolicyVersion",
    "TagRole",
    "UpdateAssumeRolePolicy",
    "PutRolePermissionsBoundary",
    "UpdateRole",
    "AttachRolePolicy",
]
SCENARIOS = {"fresh": (FRESH, FRESH_WRITES), "repair": (REPAIR, REPAIR_WRITES)}


def arrange(scenario: str, aws) -> None:
    issuer = aws.create_cluster(provider=scenario != "fresh")
    if scenario == "fresh":
        return
    aws.create_bucket()
    host = issuer.removeprefix("https://")
    wrong = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringLike": {f"{host}:sub": "system:serviceaccount:*"}},
            }
        ],
    }
    aws.iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(wrong))
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    aws.iam.create_policy(PolicyName=POLICY_NAME, PolicyDocument=json.dumps(broad))
    for _ in range(4):
        aws.iam.create_policy_version(PolicyArn=POLICY_ARN, PolicyDocument=json.dumps(broad), SetAsDefault=True)


def assert_converged(scenario: str, aws) -> None:
    host = aws.issuer().removeprefix("https://")
    statement = aws.trust(ROLE)["Statement"]
    assert len(statement) == 1
    assert statement[0]["Condition"] == {"StringEquals": {f"{host}:sub": SUBJECT, f"{host}:aud": "sts.amazonaws.com"}}
    assert policy.same_document(aws.policy_document(POLICY_ARN), policy.permission_policy([Bucket(BUCKET)], "aws"))
    assert aws.attached(ROLE) == [POLICY_ARN]
    role = aws.iam.get_role(RoleName=ROLE)["Role"]
    assert {"Key": "app.kubernetes.io/managed-by", "Value": "velero-irsa"} in role["Tags"]
    if scenario == "repair":
        assert role["MaxSessionDuration"] == 7200
        assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    assert len(aws.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def then_converges_and_rests(scenario: str, args: list[str], aws, proxy, via) -> None:
    """The second run converges; the third makes no write call."""
    proxy.reset()
    second = run_cli(args, via)
    assert second.code == 0, second.stderr
    assert_converged(scenario, aws)
    proxy.reset()
    third = run_cli(args, via)
    assert (third.code, proxy.writes) == (0, []), third.stderr


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenario_makes_exactly_its_writes(scenario, aws, proxy, via):
    args, writes = SCENARIOS[scenario]
    arrange(scenario, aws)
    result = run_cli(args, via)
    assert result.code == 0, result.stderr
    assert proxy.writes == writes
    then_converges_and_rests(scenario, args, aws, proxy, via)


KILLS = [(scenario, n) for scenario, (_, writes) in sorted(SCENARIOS.items()) for n in range(1, len(writes) + 1)]


@pytest.mark.parametrize(("scenario", "n"), KILLS, ids=[f"{s}-after-write-{n}" for s, n in KILLS])
def test_a_run_killed_after_any_write_is_completed_by_the_next(scenario, n, aws, proxy, via):
    args, writes = SCENARIOS[scenario]
    arrange(scenario, aws)
    proxy.reset(Rule(KILL_AFTER, "write", skip=n - 1))
    process = subprocess.Popen(
        [sys.executable, "-m", "velero_irsa_postrender", *args],
        env=via,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proxy.victim = process.pid
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert proxy.writes == writes[:n]
    then_converges_and_rests(scenario, args, aws, proxy, via)


# Transient: one failure, which botocore's standard retries absorb within the same run. A reset
# after moto saw the call makes the retry meet its own creation, so that one hits every write.
TRANSIENT_TARGETS = ["GetRole", "CreatePolicy", "CreateRole", "AttachRolePolicy"]
TRANSIENT = [(fault, op) for fault in (THROTTLE, SERVER_ERROR, RESET_BEFORE, RESET_AFTER) for op in TRANSIENT_TARGETS]
TRANSIENT += [(RESET_AFTER, "CreateOpenIDConnectProvider"), (RESET_AFTER, f"PUT /{BUCKET}")]


@pytest.mark.parametrize(("fault", "operation"), TRANSIENT, ids=[f"{f}-{o}" for f, o in TRANSIENT])
def test_a_transient_fault_is_retried_within_the_run(fault, operation, aws, proxy, via):
    arrange("fresh", aws)
    proxy.reset(Rule(fault, operation))
    first = run_cli(FRESH, via)
    assert first.code == 0, first.stderr
    assert proxy.faults == [fault]
    assert_converged("fresh", aws)
    then_converges_and_rests("fresh", FRESH, aws, proxy, via)


# Persistent: every attempt fails, so the run must stop with one line; the next run finishes the job.
PERSISTENT_TARGETS = ["CreateRole", "AttachRolePolicy"]
PERSISTENT = [(fault, op) for fault in (THROTTLE, SERVER_ERROR, RESET_BEFORE, RESET_AFTER) for op in PERSISTENT_TARGETS]
PERSISTENT_MESSAGES = {
    THROTTLE: "AWS kept throttling",
    SERVER_ERROR: "AWS kept failing",
    RESET_BEFORE: "the connection to AWS failed",
    RESET_AFTER: "the connection to AWS failed",
}


@pytest.mark.parametrize(("fault", "operation"), PERSISTENT, ids=[f"{f}-{o}" for f, o in PERSISTENT])
def test_a_persistent_fault_stops_the_run_with_one_line_and_the_next_run_converges(fault, operation, aws, proxy, via):
    arrange("fresh", aws)
    proxy.reset(Rule(fault, operation, times=1000))
    first = run_cli(FRESH, {**via, "AWS_MAX_ATTEMPTS": "2"})
    assert (first.code, first.stdout) == (1, b""), first.stderr
    errors = [line for line in first.stderr.splitlines() if line.startswith("velero-irsa: error: ")]
    assert len(errors) == 1 and PERSISTENT_MESSAGES[fault] in errors[0], first.stderr
    assert first.stderr.strip().splitlines()[-1] == errors[0]
    assert proxy.faults == [fault, fault]
    then_converges_and_rests("fresh", FRESH, aws, proxy, via)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_eight_concurrent_runs_all_succeed_and_leave_one_correct_role(scenario, aws, proxy, via):
    args, _ = SCENARIOS[scenario]
    arrange(scenario, aws)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "velero_irsa_postrender", *args, "-o", "json"],
            env=via,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(8)
    ]
    results = [(process, *process.communicate(timeout=180)) for process in processes]
    for process, _, stderr in results:
        assert process.returncode == 0, stderr.decode()
    arns = {json.loads(stdout)["role_arn"] for _, stdout, _ in results}
    assert arns == {f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"}
    assert [r["RoleName"] for r in aws.iam.list_roles()["Roles"]] == [ROLE]
    assert [p["PolicyName"] for p in aws.iam.list_policies(Scope="Local")["Policies"]] == [POLICY_NAME]
    assert_converged(scenario, aws)
    proxy.reset()
    assert (run_cli(args, via).code, proxy.writes) == (0, [])
