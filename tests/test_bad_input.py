"""Every bad input: exit 1, one line on stderr naming problem and fix, and nothing on stdout."""

import pytest
from conftest import fixture_bytes, run_cli

ARN = "arn:aws:iam::123456789012:role/velero"
IRSA = fixture_bytes("template-irsa.yaml")
SERVER = IRSA.split(b"# Source: velero/templates/deployment.yaml")[1].split(b"\n---")[0]

CASES = {
    "invalid yaml": (b"---\nkind: Deployment\nmetadata: [unclosed\n", "is not valid YAML"),
    "empty stream": (b"", "the manifest stream is empty"),
    "only markers and comments": (b"---\n# nothing\n---\n", "the manifest stream is empty"),
    "no velero server": (b"kind: ConfigMap\nmetadata: {name: x}\n", "no Velero server"),
    "two velero servers": (
        IRSA + b"\n---" + SERVER.replace(b"name: velero\n", b"name: velero-b\n", 1),
        "two or more Velero server Deployments",
    ),
    "service account not rendered": (fixture_bytes("template-no-sa.yaml"), "serviceAccount.server.create"),
    "static credentials left on": (fixture_bytes("template-default.yaml"), "credentials.useSecret=false"),
    "not utf-8": (b"kind: Deployment\nmetadata: {name: \xff}\n", "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_stream(case, offline_env):
    stdin, message = CASES[case]
    result = run_cli(["--role-arn", ARN], offline_env, stdin)
    assert result.code == 1
    assert result.stdout == b""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("velero-irsa: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_role_arn_is_refused(offline_env):
    result = run_cli(["--role-arn", "arn:aws:iam::123:role/x"], offline_env, IRSA)
    assert (result.code, result.stdout) == (1, b"")
    assert "role-arn" in result.stderr


def test_namespace_that_disagrees_with_the_manifests_is_refused(offline_env):
    result = run_cli(["--role-arn", ARN, "--namespace", "backup"], offline_env, IRSA)
    assert (result.code, result.stdout) == (1, b"")
    assert "--namespace backup disagrees" in result.stderr


def test_debug_shows_the_traceback_only_when_asked(offline_env):
    result = run_cli(["--role-arn", ARN], {**offline_env, "HELM_DEBUG": "true"}, b"")
    assert result.code == 1 and "Traceback" in result.stderr


def test_known_arn_path_never_calls_aws(offline_env):
    # offline_env points AWS at a closed port: any call would fail the run.
    result = run_cli(["--role-arn", ARN], offline_env, IRSA)
    assert result.code == 0, result.stderr
    assert result.stdout.replace(f'  annotations:\n    eks.amazonaws.com/role-arn: "{ARN}"\n'.encode(), b"") == IRSA


def test_an_existing_different_role_arn_is_replaced_with_a_warning(offline_env):
    stale = IRSA.replace(
        b"  name: velero-server\n  namespace: velero\n",
        b"  name: velero-server\n  namespace: velero\n  annotations:\n"
        b"    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/old\n",
        1,
    )
    result = run_cli(["--role-arn", ARN], offline_env, stale)
    assert result.code == 0
    assert "warning: replacing eks.amazonaws.com/role-arn arn:aws:iam::123456789012:role/old" in result.stderr
    assert b"role/old" not in result.stdout and ARN.encode() in result.stdout


def test_help_explains_and_version_prints(offline_env):
    help_text = run_cli(["--help"], offline_env).stdout.decode()
    assert "post-render" in help_text and "ensure-role" in help_text
    from velero_irsa_postrender import __version__

    assert run_cli(["--version"], offline_env).stdout.decode().strip() == f"velero-irsa {__version__}"
