"""The README's Helmfile recipe (examples/helmfile/), run by Helmfile 0.166 with Helm 3 and the plugin.

The release's chart is swapped for a replay of the rendered Velero fixture (VELERO_CHART), so
nothing is downloaded; AWS is the moto server.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from conftest import ACCOUNT, CACHE, CLUSTER, REPO, fixture_bytes, helm_binary, replay_chart
from helm_plugin import Installed, install

pytestmark = pytest.mark.helm

EXAMPLE = REPO / "examples" / "helmfile"
ROLE = "AWSIRSAprod-euveleroVelero"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"


def helmfile_binary():
    path = CACHE / "helmfile" / "helmfile"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Helmfile missing at {path}: .ci/get-helmfile.sh should have fetched it")
        pytest.skip("Helmfile not fetched (run sh .ci/get-helmfile.sh)")
    return path


@pytest.fixture(scope="module")
def plugin(tmp_path_factory, plugin_wheels) -> Installed:
    return install(3, tmp_path_factory.mktemp("helmfile"), plugin_wheels)


@pytest.fixture
def helmfile_env(plugin, env, tmp_path) -> dict[str, str]:
    """Helm 3 as `helm` on PATH (Helmfile and its hooks call it so), the launcher, the replayed chart."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "helm").symlink_to(helm_binary(3))
    environment = plugin.env_with(env)
    environment["PATH"] = f"{tools}:{environment['PATH']}"
    environment["HELMFILE_UPGRADE_NOTICE_DISABLED"] = "1"
    environment["VELERO_CHART"] = str(replay_chart(tmp_path, fixture_bytes("template-irsa.yaml")))
    # Helm needs a kubeconfig for sync; this one points at a closed port on 127.0.0.1.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: none\n"
        "clusters: [{name: none, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\nusers: [{name: none, user: {}}]\n"
    )
    environment["KUBECONFIG"] = str(kubeconfig)
    return environment


def helmfile(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [str(helmfile_binary()), *args]
    return subprocess.run(command, capture_output=True, env=env, cwd=EXAMPLE, timeout=300, check=False)


def server_account(raw: bytes) -> dict:
    accounts = [b for b in yaml.safe_load_all(raw) if b and b["kind"] == "ServiceAccount"]
    return next(b for b in accounts if b["metadata"]["name"] == "velero-server")


def test_template_with_the_post_renderer_annotates_the_server_account(helmfile_env, eks):
    done = helmfile(["--file", "helmfile.yaml", "template", "--skip-deps"], helmfile_env)

    assert done.returncode == 0, done.stderr.decode()
    assert server_account(done.stdout)["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}


def test_prepare_hook_creates_the_role_the_read_only_post_renderer_then_finds(helmfile_env, eks):
    done = helmfile(["--file", "helmfile-template.yaml", "template", "--skip-deps"], helmfile_env)

    assert done.returncode == 0, done.stderr.decode()
    assert ROLE_ARN.encode() in done.stdout + done.stderr  # the hook's output (showlogs)
    assert server_account(done.stdout)["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    trust = eks.trust(ROLE)["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:velero:velero-server" in trust.values()


def test_without_the_prepare_hook_the_read_only_post_renderer_fails(helmfile_env, eks, tmp_path):
    """Proof that the previous test's role came from the hook: --no-create alone creates nothing."""
    text = (EXAMPLE / "helmfile-template.yaml").read_text()
    hooks = text.index("    hooks:")  # the release's last key
    assert 'events: ["prepare"]' in text[hooks:]
    stripped = tmp_path / "helmfile.yaml"
    stripped.write_text(text[:hooks])
    (tmp_path / "values.yaml").write_text((EXAMPLE / "values.yaml").read_text())

    done = helmfile(["--file", str(stripped), "template", "--skip-deps"], helmfile_env)

    assert done.returncode != 0
    assert b"velero-irsa: error: " in done.stderr
    with pytest.raises(eks.iam.exceptions.NoSuchEntityException):
        eks.iam.get_role(RoleName=ROLE)


def test_presync_hook_runs_ensure_role_before_helm_installs(helmfile_env, eks):
    """No cluster answers, so the install fails; the role can only have come from the presync hook."""
    done = helmfile(["--file", "helmfile.yaml", "sync", "--skip-deps"], helmfile_env)

    assert done.returncode != 0  # helm upgrade --install cannot reach 127.0.0.1:9
    role = eks.iam.get_role(RoleName=ROLE)["Role"]
    assert role["Arn"] == ROLE_ARN
    assert ROLE_ARN.encode() in done.stdout + done.stderr
    assert CLUSTER in role["RoleName"]
