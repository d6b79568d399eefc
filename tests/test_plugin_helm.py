"""`helm plugin install <checkout>` on real Helm 3.17 and Helm 4.1, then every way Helm reaches us.

Each Helm major version gets its own HOME and HELM_* directories and installs the plugin once per
module; every test then runs against the moto server on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ACCOUNT, BUCKET, CLUSTER, fixture_bytes, helm_binary, replay_chart
from helm_plugin import SYSTEM_PATH, Installed, copy_plugin, install, plugin_env

pytestmark = pytest.mark.helm

ROLE = "AWSIRSAprod-euveleroVelero"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
ANNOTATION = "eks.amazonaws.com/role-arn"


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def plugin(request, tmp_path_factory, plugin_wheels) -> Installed:
    return install(request.param, tmp_path_factory.mktemp(f"helm{request.param}"), plugin_wheels)


@pytest.fixture
def helm_env(plugin, env) -> dict[str, str]:
    return plugin.env_with(env)


def bodies(raw: bytes) -> list[dict]:
    return [body for body in yaml.safe_load_all(raw) if body]


def service_accounts(raw: bytes) -> dict[str, dict]:
    return {b["metadata"]["name"]: b for b in bodies(raw) if b["kind"] == "ServiceAccount"}


def annotations(body: dict) -> dict:
    return body["metadata"].get("annotations") or {}


def sources(raw: bytes) -> dict[str, str]:
    """The `# Source:` comment Helm put above each ServiceAccount."""
    found = {}
    for document in raw.decode().split("\n---"):
        source = next((line for line in document.splitlines() if line.startswith("# Source: ")), "")
        body = yaml.safe_load(document)
        if body and body.get("kind") == "ServiceAccount":
            found[body["metadata"]["name"]] = source.removeprefix("# Source: ")
    return found


def template(plugin: Installed, env, chart, *extra: str) -> subprocess.CompletedProcess:
    return plugin.run(["template", "velero", str(chart), "-n", "velero", *extra], env)


def post_rendered(plugin: Installed, env, chart, *args: str) -> subprocess.CompletedProcess:
    extra = [arg for value in args for arg in ("--post-renderer-args", value)]
    return template(plugin, env, chart, "--post-renderer", plugin.post_renderer, *extra)


def test_install_registers_the_cli_the_launcher_and_the_companion_plugins(plugin):
    listed = plugin.run(["plugin", "list"], plugin.env).stdout.decode()
    rows = {line.split()[0]: line.split() for line in listed.splitlines()[1:] if line.strip()}

    if plugin.major == 3:
        assert set(rows) == {"velero-irsa", "velero-irsa-downloader"}
    else:
        assert {name: row[2] for name, row in rows.items()} == {
            "velero-irsa": "cli/v1",
            "velero-irsa-postrenderer": "postrenderer/v1",
            "velero-irsa-getter": "getter/v1",
        }
    launcher = plugin.home / ".local" / "bin" / "velero-irsa"
    assert str(plugin.checkout / ".venv-plugin" / "bin" / "velero-irsa") in launcher.read_text()
    version = subprocess.run([str(launcher), "--version"], capture_output=True, env=plugin.env, check=False)
    assert version.stdout.decode().strip() == "velero-irsa 0.1.0"
    assert plugin.run(["velero-irsa", "--version"], plugin.env).stdout.decode().strip() == "velero-irsa 0.1.0"


def test_running_install_sh_again_changes_nothing(plugin):
    launcher = plugin.home / ".local" / "bin" / "velero-irsa"
    before = (plugin.run(["plugin", "list"], plugin.env).stdout, launcher.read_bytes())
    again = subprocess.run(
        [str(plugin.checkout / "install.sh")],
        capture_output=True,
        env={**plugin.env, "HELM_BIN": str(plugin.helm)},
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr.decode()
    assert "velero-irsa 0.1.0 is already installed" in again.stderr.decode()
    assert (plugin.run(["plugin", "list"], plugin.env).stdout, launcher.read_bytes()) == before


def run_install_sh(plugin: Installed, **env: str) -> subprocess.CompletedProcess:
    environment = {**plugin.env, "HELM_BIN": str(plugin.helm), **env}
    return subprocess.run(
        [str(plugin.checkout / "install.sh")], capture_output=True, text=True, env=environment, timeout=300, check=False
    )


def test_install_sh_prints_the_path_line_when_no_launcher_directory_is_on_path(plugin, tmp_path):
    done = run_install_sh(plugin, PATH=SYSTEM_PATH)

    assert done.returncode == 0, done.stderr
    assert f'  export PATH="{plugin.home}/.local/bin:$PATH"\n' in done.stderr
    assert (plugin.home / ".local" / "bin" / "velero-irsa").stat().st_mode & 0o111


def test_install_sh_leaves_a_foreign_velero_irsa_alone(plugin, tmp_path):
    foreign = tmp_path / "velero-irsa"
    foreign.write_text("#!/bin/sh\necho mine\n")

    done = run_install_sh(plugin, VELERO_IRSA_BIN_DIR=str(tmp_path))

    assert done.returncode == 0, done.stderr
    assert f"left {foreign} alone" in done.stderr
    assert foreign.read_text() == "#!/bin/sh\necho mine\n"


def test_post_renderer_annotates_the_server_account_and_ensure_role_agrees(plugin, helm_env, eks, tmp_path):
    chart = replay_chart(tmp_path, fixture_bytes("template-irsa.yaml"))

    done = post_rendered(plugin, helm_env, chart, f"--cluster={CLUSTER}")

    assert done.returncode == 0, done.stderr.decode()
    accounts = service_accounts(done.stdout)
    assert annotations(accounts["velero-server"])[ANNOTATION] == ROLE_ARN
    assert ANNOTATION not in annotations(accounts["velero-server-upgrade-crds"])
    assert sum(ANNOTATION in annotations(b) for b in bodies(done.stdout)) == 1
    # Helm 4 names each document's file from the annotation it added: we must have kept it.
    assert sources(done.stdout)["velero-server"] == "replay/templates/replay.yaml"
    assert b"generated-by-postrender" not in done.stdout

    ensured = plugin.run(
        ["velero-irsa", "ensure-role", "--cluster", CLUSTER, "-n", "velero", "--output", "json"], helm_env
    )
    assert ensured.returncode == 0, ensured.stderr.decode()
    result = json.loads(ensured.stdout)
    assert result["role_arn"] == ROLE_ARN
    assert result["trust_subject"] == "system:serviceaccount:velero:velero-server"
    assert result["changes"] == []


def test_hook_resources_reach_the_post_renderer_only_on_helm_4(plugin, helm_env, eks, tmp_path):
    """The server ServiceAccount made a hook: Helm 4 post-renders it, Helm 3 never shows it to us."""
    manifest = fixture_bytes("template-irsa.yaml").replace(
        b"kind: ServiceAccount\nmetadata:\n  name: velero-server\n",
        b"kind: ServiceAccount\nmetadata:\n  name: velero-server\n  annotations:\n    helm.sh/hook: pre-install\n",
    )
    assert manifest != fixture_bytes("template-irsa.yaml")
    chart = replay_chart(tmp_path, manifest)

    done = post_rendered(plugin, helm_env, chart, f"--cluster={CLUSTER}")

    if plugin.major == 4:
        assert done.returncode == 0, done.stderr.decode()
        server = service_accounts(done.stdout)["velero-server"]
        assert annotations(server) == {"helm.sh/hook": "pre-install", ANNOTATION: ROLE_ARN}
        assert ANNOTATION not in annotations(service_accounts(done.stdout)["velero-server-upgrade-crds"])
    else:
        assert done.returncode != 0
        assert b"ServiceAccount velero-server in namespace velero, which this release does not render" in done.stderr


def test_a_failing_post_render_shows_our_message_where_the_readme_says(plugin, helm_env, tmp_path):
    chart = replay_chart(tmp_path, fixture_bytes("template-default.yaml"))

    done = post_rendered(plugin, helm_env, chart, f"--role-arn={ROLE_ARN}")

    assert done.returncode != 0
    assert done.stdout == b""
    if plugin.major == 3:
        assert b"credentials.useSecret=false" in done.stderr
        assert not plugin.error_log.exists()
    else:
        assert b"credentials.useSecret=false" not in done.stderr  # Helm 4 drops a post-renderer's stderr
        assert b"velero-irsa-postrenderer" in done.stderr
        assert "credentials.useSecret=false" in plugin.error_log.read_text()


@pytest.mark.skipif(not shutil.which("script"), reason="needs script(1) for a terminal")
def test_helm_4_post_render_errors_reach_the_terminal(plugin, helm_env, tmp_path):
    if plugin.major != 4:
        pytest.skip("Helm 3 shows the post-renderer's stderr itself")
    chart = replay_chart(tmp_path, fixture_bytes("template-default.yaml"))
    command = [str(plugin.helm), "template", "velero", str(chart), "--post-renderer", plugin.post_renderer]
    command += ["--post-renderer-args", f"--role-arn={ROLE_ARN}"]

    # script(1) gives helm a terminal; what appears there besides Helm's own error came from /dev/tty.
    done = subprocess.run(
        ["script", "-qec", shlex.join(command), "/dev/null"],
        capture_output=True,
        env=helm_env,
        timeout=300,
        check=False,
    )

    transcript = done.stdout.decode()
    assert "velero-irsa: error: " in transcript
    assert "credentials.useSecret=false" in transcript


VALUES_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: velero-values\nversion: 0.1.0\n",
    "values.yaml": "serviceAccount:\n  server:\n    name: ''\n    annotations: {}\ncredentials:\n  useSecret: true\n",
    "templates/serviceaccount.yaml": (
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n"
        '  name: {{ .Values.serviceAccount.server.name | default "velero-server" }}\n'
        "  namespace: {{ .Release.Namespace }}\n"
        "  {{- with .Values.serviceAccount.server.annotations }}\n"
        "  annotations: {{- toYaml . | nindent 4 }}\n"
        "  {{- end }}\n"
    ),
    "templates/secret.yaml": (
        "{{- if .Values.credentials.useSecret }}\n"
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: velero\ntype: Opaque\n"
        "{{- end }}\n"
    ),
}


@pytest.fixture
def values_chart(tmp_path):
    """The two places of the Velero chart that our values file sets, rendered the chart's way."""
    chart = tmp_path / "velero-values"
    for name, text in VALUES_CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    return chart


def test_values_url_gives_the_annotated_account_and_no_credentials_secret(plugin, helm_env, eks, values_chart):
    url = f"velero-irsa://{CLUSTER}/velero?bucket={BUCKET}"

    done = template(plugin, helm_env, values_chart, "-f", url)

    assert done.returncode == 0, done.stderr.decode()
    kinds = [body["kind"] for body in bodies(done.stdout)]
    assert kinds == ["ServiceAccount"]
    assert annotations(service_accounts(done.stdout)["velero-server"]) == {ANNOTATION: ROLE_ARN}
    assert eks.iam.get_role(RoleName=ROLE)["Role"]["Arn"] == ROLE_ARN


def test_values_url_names_a_custom_service_account(plugin, helm_env, eks, values_chart):
    done = template(plugin, helm_env, values_chart, "-f", f"velero-irsa://{CLUSTER}/backup/edp-velero?bucket={BUCKET}")

    assert done.returncode == 0, done.stderr.decode()
    account = service_accounts(done.stdout)["edp-velero"]
    trust = eks.trust("AWSIRSAprod-eubackupVelero")
    assert annotations(account) == {ANNOTATION: f"arn:aws:iam::{ACCOUNT}:role/AWSIRSAprod-eubackupVelero"}
    host = eks.issuer().removeprefix("https://")
    assert (
        trust["Statement"][0]["Condition"]["StringEquals"][f"{host}:sub"] == "system:serviceaccount:backup:edp-velero"
    )


def test_a_bad_values_url_fails_with_our_message(plugin, helm_env, values_chart):
    done = template(plugin, helm_env, values_chart, "-f", f"velero-irsa://{CLUSTER}/velero?colour=blue")

    assert done.returncode != 0
    assert b"velero-irsa: error: velero-irsa:// URL: unknown parameter 'colour'" in done.stderr


def test_helm_4_leaves_a_plugin_directory_shared_with_helm_3_loadable(tmp_path, plugin_wheels):
    """Helm 3 and Helm 4 default to one plugin directory, where a Helm 4 plugin breaks every Helm 3 plugin."""
    checkout = copy_plugin(tmp_path / "velero-irsa")
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "helm3").symlink_to(helm_binary(3))
    env = plugin_env(tmp_path, plugin_wheels)
    env["PATH"] = f"{tools}:{env['PATH']}"
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        del env[name]  # both major versions on their defaults, as on most machines
    helm4 = [str(helm_binary(4)), "plugin"]

    done = subprocess.run([*helm4, "install", str(checkout)], capture_output=True, env=env, timeout=600, check=False)

    assert done.returncode == 0, done.stderr.decode()
    assert b"velero-irsa-postrenderer was NOT installed" in done.stderr
    helm3_list = subprocess.run([str(tools / "helm3"), "plugin", "list"], capture_output=True, env=env, check=False)
    assert helm3_list.returncode == 0, helm3_list.stderr.decode()
    assert {line.split()[0] for line in helm3_list.stdout.decode().splitlines()[1:]} == {
        "velero-irsa",
        "velero-irsa-downloader",
    }

    # The README's way out: Helm 4 gets a data directory (so a plugin directory) of its own.
    own = {**env, "HELM_DATA_HOME": str(tmp_path / "helm4-data")}
    done = subprocess.run([*helm4, "install", str(checkout)], capture_output=True, env=own, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()
    listed = subprocess.run([*helm4, "list"], capture_output=True, env=own, check=False).stdout.decode()
    assert {"velero-irsa", "velero-irsa-postrenderer", "velero-irsa-getter"} <= set(listed.split())
    helm3_list = subprocess.run([str(tools / "helm3"), "plugin", "list"], capture_output=True, env=env, check=False)
    assert helm3_list.returncode == 0, helm3_list.stderr.decode()


def git(args: list[str], cwd) -> None:
    identity = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t"}
    identity |= {"GIT_COMMITTER_EMAIL": "t@localhost", "PATH": SYSTEM_PATH, "HOME": str(cwd)}
    subprocess.run(["git", *args], cwd=cwd, env=identity, check=True, capture_output=True)


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
@pytest.mark.parametrize("major", [3, 4])
def test_install_from_git_and_update_run_install_sh(major, tmp_path, plugin_wheels):
    """The way users install: from a git URL (here file://, nothing leaves the machine), then update."""
    repo = copy_plugin(tmp_path / "repo")
    git(["init", "-q"], repo)
    git(["add", "."], repo)
    git(["commit", "-qm", "plugin"], repo)
    env = plugin_env(tmp_path, plugin_wheels)
    helm = [str(helm_binary(major)), "plugin"]
    verify = ["--verify=false"] if major == 4 else []  # Helm 4 checks signatures of all but local dirs

    installed = subprocess.run([*helm, "install", f"file://{repo}", *verify], capture_output=True, env=env, check=False)
    (repo / "bin" / "velero-irsa").write_text((repo / "bin" / "velero-irsa").read_text() + "# updated\n")
    git(["commit", "-qam", "update"], repo)
    updated = subprocess.run([*helm, "update", "velero-irsa"], capture_output=True, env=env, check=False)

    assert installed.returncode == 0, installed.stderr.decode()
    assert updated.returncode == 0, updated.stderr.decode()
    said = (updated.stdout + updated.stderr).decode()
    assert "installed velero-irsa 0.1.0 into " in said  # the update hook ran install.sh --force
    plugin_dir = Path(re.search(r"installed velero-irsa 0\.1\.0 into (\S+)/\.venv-plugin", said).group(1))
    assert (plugin_dir / "bin" / "velero-irsa").read_text().endswith("# updated\n")
    version = subprocess.run([*helm[:1], "velero-irsa", "--version"], capture_output=True, env=env, check=False)
    assert version.stdout == b"velero-irsa 0.1.0\n"
