"""The plugin's manifests, install.sh, the velero-irsa:// URL and the error copy, without running Helm."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from conftest import ACCOUNT, BUCKET, CLUSTER, REPO, fixture_bytes, run_cli

from velero_irsa_postrender import __version__
from velero_irsa_postrender.downloader import url_settings
from velero_irsa_postrender.errors import ConfigError

MANIFESTS = sorted([REPO / "plugin.yaml", *REPO.glob("plugins/*/plugin.yaml")])
# Every key of Helm 3.0's plugin.yaml: Helm 3 refuses a file with any other key, and with it every plugin.
HELM_30_KEYS = {"name", "version", "usage", "description", "command", "platformCommand", "ignoreFlags", "hooks"}
HELM_30_KEYS |= {"downloaders", "useTunnel"}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/AWSIRSAprod-euveleroVelero"


def manifest(path) -> dict:
    return yaml.safe_load(path.read_text())


def test_version_is_the_same_in_every_manifest_and_in_the_cli(offline_env):
    pyproject = re.search(r'(?m)^version = "([^"]+)"$', (REPO / "pyproject.toml").read_text()).group(1)
    versions = {str(path.relative_to(REPO)): manifest(path)["version"] for path in MANIFESTS}
    printed = run_cli(["--version"], offline_env).stdout.decode().split()

    assert len(versions) == 4
    assert set(versions.values()) == {pyproject} == {__version__}
    assert printed == ["velero-irsa", pyproject]


def test_root_manifest_loads_on_helm_3_0_and_stays_a_cli_plugin_on_helm_4():
    root = manifest(REPO / "plugin.yaml")

    assert set(root) <= HELM_30_KEYS
    # Helm 4 types a legacy plugin with downloaders as a getter: `helm velero-irsa` would vanish.
    assert "downloaders" not in root
    assert set(root["hooks"]) == {"install", "update"}


def test_companion_plugins_have_their_own_names_and_types():
    typed = {manifest(path)["name"]: manifest(path) for path in MANIFESTS if "apiVersion" in manifest(path)}
    legacy = manifest(REPO / "plugins" / "velero-irsa-downloader" / "plugin.yaml")

    assert {name: body["type"] for name, body in typed.items()} == {
        "velero-irsa-postrenderer": "postrenderer/v1",
        "velero-irsa-getter": "getter/v1",
    }
    assert {body["apiVersion"] for body in typed.values()} == {"v1"}
    assert typed["velero-irsa-getter"]["config"]["protocols"] == ["velero-irsa"]
    assert set(legacy) <= HELM_30_KEYS
    assert legacy["downloaders"] == [{"command": "run.sh download", "protocols": ["velero-irsa"]}]
    for path in MANIFESTS:
        assert path.parent.name == manifest(path)["name"] or path.parent == REPO


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    scripts = [REPO / "install.sh", REPO / "bin" / "velero-irsa", *REPO.glob("plugins/*/run.sh")]
    scripts += list((REPO / ".ci").glob("get-helm*.sh"))

    done = subprocess.run(["shellcheck", "--shell=sh", *map(str, scripts)], capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stdout


def test_install_sh_rejects_an_unknown_option(tmp_path):
    done = subprocess.run(
        ["sh", str(REPO / "install.sh"), "--frobnicate"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )

    assert done.returncode == 1
    assert done.stderr == "velero-irsa: error: unknown option --frobnicate (only --force)\n"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("velero-irsa://prod-eu/velero", {"cluster": "prod-eu", "namespace": "velero"}),
        (
            "velero-irsa://prod-eu/backup/edp-velero?bucket=a-b&bucket=c-d&region=eu-central-1",
            {
                "cluster": "prod-eu",
                "namespace": "backup",
                "service-account": "edp-velero",
                "bucket": ["a-b", "c-d"],
                "region": "eu-central-1",
            },
        ),
        (
            "velero-irsa://prod-eu/velero?create-bucket&dry-run=false&max-session-duration=7200&tag=team%3Dops",
            {
                "cluster": "prod-eu",
                "namespace": "velero",
                "create-bucket": True,
                "dry-run": False,
                "max-session-duration": 7200,
                "tag": {"team": "ops"},
            },
        ),
        ("velero-irsa://prod-eu?role-arn=" + ROLE_ARN, {"cluster": "prod-eu", "role-arn": ROLE_ARN}),
    ],
)
def test_url_becomes_settings(url, expected):
    assert url_settings(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://prod-eu/velero", "is not a velero-irsa:// URL"),
        ("velero-irsa:///velero", "does not read velero-irsa://<cluster>/<namespace>"),
        ("velero-irsa://prod-eu/a/b/c", "does not read velero-irsa://<cluster>/<namespace>"),
        ("velero-irsa://prod-eu/velero?colour=blue", "unknown parameter 'colour'"),
        ("velero-irsa://prod-eu/velero?namespace=other", "unknown parameter 'namespace'"),
        ("velero-irsa://prod-eu/velero?tag=team", "tag='team' is not KEY=VALUE"),
    ],
)
def test_malformed_url_is_a_config_error(url, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        url_settings(url)


def test_download_prints_values_for_the_url_without_aws_when_the_role_is_given(offline_env):
    url = f"velero-irsa://{CLUSTER}/velero/edp-velero?role-arn={ROLE_ARN}"

    done = run_cli(["download", "", "", "", url], offline_env)

    assert done.code == 0, done.stderr
    assert yaml.safe_load(done.stdout) == {
        "serviceAccount": {"server": {"name": "edp-velero", "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}}},
        "credentials": {"useSecret": False},
    }


def test_download_url_beats_the_environment(eks, env):
    environment = {**env, "VELERO_IRSA_CLUSTER": "other-cluster", "VELERO_IRSA_BUCKET": "not-this-one"}

    done = run_cli(["download", "", "", "", f"velero-irsa://{CLUSTER}/velero?bucket={BUCKET}"], environment)

    assert done.code == 0, done.stderr
    assert yaml.safe_load(done.stdout)["serviceAccount"]["server"]["annotations"] == {
        "eks.amazonaws.com/role-arn": ROLE_ARN
    }
    policy = f"arn:aws:iam::{ACCOUNT}:policy/AWSIRSAprod-euveleroVelero_policy"
    resources = [r for s in eks.policy_document(policy)["Statement"] for r in _listed(s["Resource"])]
    assert f"arn:aws:s3:::{BUCKET}" in resources and "arn:aws:s3:::not-this-one" not in resources


def _listed(resource) -> list[str]:
    return resource if isinstance(resource, list) else [resource]


def test_download_rejects_a_url_value_the_schema_forbids(offline_env):
    done = run_cli(["download", "", "", "", f"velero-irsa://{CLUSTER}/velero?max-session-duration=60"], offline_env)

    assert done.code == 1 and done.stdout == b""
    assert "max-session-duration: 60 is less than the minimum of 3600" in done.stderr


def failing_post_render(env) -> object:
    return run_cli(["post-render", f"--role-arn={ROLE_ARN}"], env, stdin=fixture_bytes("template-default.yaml"))


def test_errors_go_to_the_error_log_when_helm_4_hides_stderr(offline_env, tmp_path):
    environment = {**offline_env, "HELM_PLUGIN_NAME": "velero-irsa-postrenderer"}
    error_log = tmp_path / "home" / ".local" / "state" / "velero-irsa" / "error.log"

    done = failing_post_render(environment)

    assert done.code == 1
    assert done.stderr.count("\n") == 1 and "credentials.useSecret=false" in done.stderr
    assert error_log.read_text().count("velero-irsa: error: ") == 1
    assert done.stderr.strip() in error_log.read_text()


def test_no_error_log_where_stderr_is_seen(offline_env, tmp_path):
    done = failing_post_render(offline_env)

    assert done.code == 1 and "credentials.useSecret=false" in done.stderr
    assert not (tmp_path / "home" / ".local" / "state").exists()


def test_the_error_log_path_can_be_chosen(offline_env, tmp_path):
    by_env, by_config = tmp_path / "env.log", tmp_path / "config.log"
    config = tmp_path / "config.yaml"
    config.write_text(f"log-file: {by_config}\n")

    failing_post_render({**offline_env, "VELERO_IRSA_CONFIG": str(config)})
    failing_post_render({**offline_env, "VELERO_IRSA_CONFIG": str(config), "VELERO_IRSA_LOG_FILE": str(by_env)})

    assert by_config.read_text().count("credentials.useSecret=false") == 1
    assert by_env.read_text().count("credentials.useSecret=false") == 1
