"""The converger's small rules, in-process and without AWS: plan diffs, version order, retries, backoff."""

from __future__ import annotations

import datetime

import pytest
from botocore.exceptions import ClientError

from velero_irsa_postrender import aws, role
from velero_irsa_postrender.errors import AwsError
from velero_irsa_postrender.identity import Cluster
from velero_irsa_postrender.velero import Bucket


def client_error(code: str, operation: str = "GetRole", status: int = 400) -> ClientError:
    response = {"Error": {"Code": code, "Message": f"{code} here"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


def request(**extra) -> role.RoleRequest:
    cluster = Cluster("prod-eu", "https://oidc.eks.eu-central-1.amazonaws.com/id/X", "123456789012", "aws")
    return role.RoleRequest([cluster], "velero", "velero-server", [Bucket("b-1")], "r", "r_policy", **extra)


def test_a_plan_entry_shows_the_document_diff():
    before = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    after = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}]}
    lines = role.Change("update", "policy p", before, after).diff()
    assert lines[:2] == ["--- before", "+++ after"]
    assert '-      "Action": "s3:GetObject",' in lines and '+      "Action": "s3:PutObject",' in lines
    assert role.Change("attach", "policy p to role r").diff() == []
    assert role.Change("update", "max session duration", 3600, 7200).diff()[-2:] == ["-3600", "+7200"]


def test_the_oldest_version_goes_first_even_within_one_second():
    second = datetime.datetime(2026, 1, 1, 12, 0, 0)
    versions = [{"VersionId": f"v{n}", "CreateDate": second} for n in (12, 3, 10)]
    assert [v["VersionId"] for v in sorted(versions, key=role._age)] == ["v3", "v10", "v12"]


def test_tags_added_by_hand_are_not_drift_but_a_changed_value_is():
    wanted = request().tags()
    assert not role.tags_differ([*wanted, {"Key": "team", "Value": "a"}], wanted)
    changed = [{**t, "Value": "other"} if t["Key"] == role.CLUSTER_TAG else t for t in wanted]
    assert role.tags_differ(changed, wanted)
    assert role.tags_differ(None, wanted)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, {"mode": "standard", "total_max_attempts": 8}),
        ({"AWS_MAX_ATTEMPTS": "3"}, {"mode": "standard", "total_max_attempts": 3}),
        ({"AWS_RETRY_MODE": "adaptive"}, {"mode": "adaptive", "total_max_attempts": 8}),
        ({"AWS_RETRY_MODE": "legacy"}, {"mode": "standard", "total_max_attempts": 8}),
    ],
)
def test_retries_are_standard_with_eight_attempts_unless_the_sdk_variables_say_otherwise(
    variables, expected, monkeypatch
):
    for name in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert aws.retry_settings() == expected


def test_a_bad_max_attempts_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(AwsError, match="AWS_MAX_ATTEMPTS=many"):
        aws.retry_settings()


class _NoClients:
    iam = None


def converger() -> tuple[role.Converger, list[float]]:
    slept: list[float] = []
    return role.Converger(request(), _NoClients(), sleep=slept.append), slept  # type: ignore[arg-type]


def test_not_yet_visible_is_waited_out_with_growing_pauses():
    answers = [client_error("NoSuchEntity"), client_error("NoSuchEntity"), "found"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    subject, slept = converger()
    assert subject._eventually(call) == "found"
    assert len(slept) == 2 and slept[0] <= slept[1]


def test_waiting_is_bounded():
    def call():
        raise client_error("NoSuchEntity")

    subject, slept = converger()
    with pytest.raises(ClientError):
        subject._eventually(call)
    assert len(slept) == role.CONSISTENCY_ATTEMPTS - 1
    assert sum(slept) <= 40


def test_other_errors_are_not_waited_on():
    def call():
        raise client_error("AccessDenied")

    subject, slept = converger()
    with pytest.raises(ClientError):
        subject._eventually(call)
    assert slept == []


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (client_error("Throttling"), "AWS kept throttling while trying to read role r (Throttling)"),
        (client_error("InternalFailure", status=500), "AWS kept failing while trying to read role r (HTTP 500"),
        (client_error("AccessDenied"), "AWS refused to read role r (iam:GetRole was denied)"),
    ],
)
def test_aws_failures_become_one_readable_line(error, message):
    with pytest.raises(AwsError) as caught, aws.translated("read role r", "iam:GetRole"):
        raise error
    assert message in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_an_aws_code_nobody_branched_on_still_becomes_one_line():
    with pytest.raises(AwsError, match="AWS answered MalformedPolicyDocument to CreateRole"), aws.explained("x"):
        raise client_error("MalformedPolicyDocument", "CreateRole")
