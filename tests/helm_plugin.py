"""Install the plugin from the working tree into an isolated Helm, the way users run `helm plugin install`.

The plugin files are copied out of the checkout first: install.sh creates its virtual environment
inside the plugin directory, and the checkout must stay clean for the other tests. install.sh
installs offline from a wheel directory (VELERO_IRSA_WHEELS): our wheel, built fresh from the
working tree once per session, beside our dependencies' wheels, cached in ~/.cache/velero-irsa.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import CACHE, REPO, helm_binary, isolated_env

PLUGIN_FILES = ("plugin.yaml", "install.sh", "bin", "plugins")
# Only system directories: a helm of the developer's must not be found by install.sh.
SYSTEM_PATH = "/usr/bin:/bin"


def _pip(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{done.stderr}")
    return done


def build_wheels(target: Path) -> Path:
    """A wheel directory for VELERO_IRSA_WHEELS; dependencies resolve offline once they are cached."""
    _pip("wheel", "--no-deps", "--wheel-dir", target, REPO)
    ours = next(target.glob("velero_irsa-*.whl"))
    house = CACHE / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    if _pip("wheel", "--no-index", "--find-links", house, "--wheel-dir", house, ours, check=False).returncode:
        _pip("wheel", "--wheel-dir", house, ours)
    for wheel in house.glob("*.whl"):
        if wheel.name.startswith("velero_irsa-"):
            wheel.unlink()
        else:
            (target / wheel.name).symlink_to(wheel)
    return target


@dataclass
class Installed:
    """velero-irsa installed as a plugin of one Helm major version, in its own HOME and HELM_* dirs."""

    major: int
    home: Path
    checkout: Path
    env: dict[str, str]
    output: str

    @property
    def helm(self) -> Path:
        return helm_binary(self.major)

    @property
    def post_renderer(self) -> str:
        return "velero-irsa" if self.major == 3 else "velero-irsa-postrenderer"

    @property
    def error_log(self) -> Path:
        return self.home / ".local" / "state" / "velero-irsa" / "error.log"

    def env_with(self, aws_env: dict[str, str]) -> dict[str, str]:
        """The moto endpoint and fake credentials of a test, with this installation's HOME and HELM_*."""
        merged = {**aws_env, **self.env}
        merged.pop("PYTHONPATH", None)
        return merged

    def run(self, args: list[str], env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.helm), *args], input=stdin, capture_output=True, env=env, timeout=300, check=False
        )


def plugin_env(base: Path, wheels: Path) -> dict[str, str]:
    env = isolated_env(base, None)
    # The plugin must run from its own virtual environment, never from this checkout.
    env.pop("PYTHONPATH")
    env["PATH"] = f"{env['HOME']}/.local/bin:{SYSTEM_PATH}"
    env["VELERO_IRSA_WHEELS"] = str(wheels)
    env["VELERO_IRSA_PYTHON"] = sys.executable
    return env


def copy_plugin(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in PLUGIN_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, symlinks=True)
        else:
            shutil.copy2(source, target / name)
    return target


def install(major: int, base: Path, wheels: Path) -> Installed:
    checkout = copy_plugin(base / "velero-irsa")
    env = plugin_env(base, wheels)
    done = subprocess.run(
        [str(helm_binary(major)), "plugin", "install", str(checkout)],
        capture_output=True,
        env=env,
        timeout=600,
        check=False,
    )
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    return Installed(major, Path(env["HOME"]), checkout, env, output)
