"""No credential, session token, request signature or environment ever reaches a log line.

Runs go through the fault proxy with -v and HELM_DEBUG=true, with recognisable fake secrets, and
once against an endpoint that quotes every request header back in its error message.
"""

from __future__ import annotations

import re

import pytest
from conftest import BUCKET, CLUSTER, run_cli
from faultproxy import ECHO_SECRETS, Rule

from velero_irsa_postrender import log

ARGS = ["ensure-role", "--cluster", CLUSTER, "--namespace", "velero", "--bucket", BUCKET, "-o", "json"]
ACCESS_KEY = "AKIAVELEROIRSATEST01"
SECRET_KEY = "wJalrXUtnFEMI-velero-irsa-SECRET-do-not-log"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEVELEROIRSATOKENdonotlog//////////wEaCXVzLWVhc3QtMSJGMEQCIFAKE="
CANARY = "canary-value-of-an-unrelated-variable"


@pytest.fixture
def secret_env(env, proxy):
    """Debug on everywhere, recognisable credentials, and a variable no log should ever show."""
    return {
        **env,
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "HELM_DEBUG": "true",
        "VELERO_IRSA_TEST_CANARY": CANARY,
        "AWS_MAX_ATTEMPTS": "1",
    }


def signatures(proxy) -> set[str]:
    found = set()
    for headers in proxy.headers_seen:
        match = re.search(r"Signature=([0-9a-f]+)", headers.get("Authorization", ""))
        if match:
            found.add(match.group(1))
    return found


def assert_nothing_secret(text: str, proxy) -> None:
    secrets = [SECRET_KEY, SESSION_TOKEN, SESSION_TOKEN[:24], CANARY, *signatures(proxy)]
    leaked = [secret for secret in secrets if secret in text]
    assert not leaked, text
    assert "AWS4-HMAC-SHA256 Credential" not in text


@pytest.mark.parametrize("flags", [["-v"], []], ids=["verbose", "helm-debug"])
def test_a_debug_run_logs_no_secret(flags, eks, proxy, secret_env):
    result = run_cli([*ARGS, *flags], secret_env)
    assert result.code == 0, result.stderr
    assert signatures(proxy), "the proxy should have seen signed requests"
    assert "debug: AWS call iam:GetRole" in result.stderr
    assert_nothing_secret(result.stderr + result.stdout.decode(), proxy)


def test_an_endpoint_that_quotes_the_request_back_has_its_secrets_redacted(eks, proxy, secret_env):
    proxy.reset(Rule(ECHO_SECRETS, "GetRole", times=10))
    result = run_cli([*ARGS, "-v"], secret_env)
    assert (result.code, result.stdout) == (1, b""), result.stderr
    assert "AWS refused to read role" in result.stderr and "Traceback" in result.stderr
    assert_nothing_secret(result.stderr, proxy)


def test_an_unexpected_error_shows_no_environment(proxy, secret_env, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_bytes(b"\xff\xfe not text")
    result = run_cli([*ARGS, "--config", str(config)], secret_env)
    assert result.code == 1
    assert_nothing_secret(result.stderr, proxy)


REDACTED = {
    "ini line": ("aws_secret_access_key = wJalrXUtnFEMI", "wJalrXUtnFEMI"),
    "json": ('{"SecretAccessKey": "wJalrXUtnFEMI", "SessionToken": "IQoJtok"}', "wJalrXUtnFEMI", "IQoJtok"),
    "environment": ("AWS_SESSION_TOKEN=IQoJtok AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "IQoJtok", "wJalrXUtnFEMI"),
    "header": ("X-Amz-Security-Token: IQoJtok", "IQoJtok"),
    "header dict with bytes": ("{'X-Amz-Security-Token': b'IQoJtok', 'Authorization': b'AWS4'}", "IQoJtok"),
    "authorization": (
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAX/20261204/eu-central-1/iam/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0123abcd",
        "0123abcd",
        "AKIAX/20261204",
    ),
    "query string": ("X-Amz-Credential=AKIAX%2F20261204&X-Amz-Signature=0123abcd", "0123abcd", "AKIAX%2F2026"),
}


@pytest.mark.parametrize("case", sorted(REDACTED))
def test_redact_removes_every_secret_form(case):
    text, *secrets = REDACTED[case]
    cleaned = log.redact(text)
    assert not [secret for secret in secrets if secret in cleaned], cleaned


def test_a_registered_secret_is_redacted_wherever_it_appears():
    log.add_secret("a-bare-secret-value-0123456789")
    assert "a-bare-secret-value" not in log.redact("the token a-bare-secret-value-0123456789 is invalid")


def test_a_value_from_the_manifests_cannot_forge_a_log_line(offline_env):
    from conftest import fixture_bytes

    arn = "arn:aws:iam::123456789012:role/velero"
    forged = fixture_bytes("template-irsa.yaml").replace(
        b"  name: velero-server\n  namespace: velero\n",
        b"  name: velero-server\n  namespace: velero\n  annotations:\n"
        b'    eks.amazonaws.com/role-arn: "old\\nvelero-irsa: error: forged"\n',
        1,
    )
    result = run_cli(["--role-arn", arn], offline_env, forged)
    assert result.code == 0, result.stderr
    assert "warning: replacing" in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith("velero-irsa: error")], result.stderr
