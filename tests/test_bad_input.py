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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clustr=prod-eu"], "No such option: --clustr"),
        (["ensur-role"], "No such command 'ensur-role'. Did you mean 'ensure-role'?"),
        (["ensure-role", "--max-session-duration", "abc"], "Invalid value for '--max-session-duration'"),
    ],
)
def test_a_mistyped_command_line_is_one_line_with_exit_2(offline_env, args, message):
    result = run_cli(args, offline_env, IRSA)
    assert (result.code, result.stdout) == (2, b"")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("velero-irsa: error: ") and message in lines[0]
    assert lines[0].endswith("--help`)")


def test_under_helm4_a_usage_error_reaches_the_error_log(offline_env, tmp_path):
    env = {**offline_env, "HELM_PLUGIN_NAME": "velero-irsa-postrenderer", "XDG_STATE_HOME": str(tmp_path / "state")}
    result = run_cli(["--clustr=prod-eu"], env, IRSA)
    assert result.code == 2
    logged = (tmp_path / "state" / "velero-irsa" / "error.log").read_text()
    assert "velero-irsa: error: No such option: --clustr" in logged


def test_post_render_from_a_terminal_says_what_it_expects(offline_env):
    import os
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "velero_irsa_postrender", "post-render", "--role-arn", ARN],
            stdin=secondary,
            capture_output=True,
            env=offline_env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert (done.returncode, done.stdout) == (1, b"")
    assert b"stdin is a terminal" in done.stderr


def test_a_closed_stdout_ends_quietly(offline_env):
    import subprocess
    import sys

    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    done = subprocess.run(
        [sys.executable, "-m", "velero_irsa_postrender", "--role-arn", ARN],
        input=fixture_bytes("template-irsa-with-crds.yaml"),  # 170 KB: more than a pipe holds
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        env=offline_env,
        timeout=60,
        check=False,
    )
    reader.stdin.close()
    reader.wait(timeout=30)
    assert done.returncode == 1
    assert b"annotated ServiceAccount velero/velero-server" in done.stderr  # it got as far as writing
    assert b"Traceback" not in done.stderr and b"BrokenPipeError" not in done.stderr


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            b'bucket: "velero-prod-eu"',
            b'bucket: "s3://velero-prod-eu"',
            "'s3://velero-prod-eu' is not an S3 bucket name",
        ),
        (b"serviceAccountName: velero-server", b"serviceAccountName: Velero_Server", "is not a Kubernetes object name"),
    ],
)
def test_names_from_the_manifests_meet_the_same_rules_as_flags(offline_env, before, after, message):
    stream = IRSA.replace(before, after)
    if b"Velero_Server" in stream:
        stream = stream.replace(
            b"  name: velero-server\n  namespace: velero\n", b"  name: Velero_Server\n  namespace: velero\n", 1
        )
    result = run_cli(["--role-arn", ARN], offline_env, stream)
    assert (result.code, result.stdout) == (1, b"")
    assert message in result.stderr and "fix the chart values" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            b'bucket: "velero-prod-eu"\n',
            b'bucket: "velero-prod-eu"\n    prefix: "a*"\n',
            "'a*' is not an S3 key prefix",
        ),
        (b'region: "eu-central-1"\n---', b'region: "moon"\n---', "'moon' is not an AWS region"),
    ],
)
def test_a_wildcard_prefix_or_odd_region_in_a_location_is_refused(offline_env, before, after, message):
    assert before in IRSA
    result = run_cli(["--role-arn", ARN], offline_env, IRSA.replace(before, after, 1))
    assert (result.code, result.stdout) == (1, b""), result.stderr
    assert message in result.stderr
