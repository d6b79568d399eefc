"""Shared fixtures: an isolated environment, a moto server on 127.0.0.1, the real Helm binaries.

Nothing from the developer's machine leaks in: HOME, HELM_* and AWS_* point into tmp_path, and
every AWS call goes to the moto server started here (never to a real endpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import faultproxy
import pytest

from benchmarks.measure import child_env

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VELERO_IRSA_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "velero-12.1.0"
CACHE = Path(os.environ.get("VELERO_IRSA_CACHE", Path.home() / ".cache" / "velero-irsa"))

ACCOUNT = "123456789012"
REGION = "eu-central-1"
CLUSTER = "prod-eu"
BUCKET = "velero-prod-eu"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def isolated_env(tmp_path: Path, endpoint: str | None) -> dict[str, str]:
    """A minimal environment: our PATH, a fresh HOME, fake AWS credentials, Helm's homes inside it."""
    home = tmp_path / "home"
    return {
        **child_env(home, endpoint),
        "HELM_CACHE_HOME": str(home / "helm-cache"),
        "HELM_CONFIG_HOME": str(home / "helm-config"),
        "HELM_DATA_HOME": str(home / "helm-data"),
    }


@pytest.fixture
def env(tmp_path, moto_server):
    reset_moto(moto_server)
    return isolated_env(tmp_path, moto_server)


@pytest.fixture
def offline_env(tmp_path):
    """An environment whose AWS endpoint refuses connections: proof that no AWS call is made."""
    environment = isolated_env(tmp_path, "http://127.0.0.1:9")
    return environment


@pytest.fixture(scope="session")
def eks_stub(moto_server):
    """The EKS Pod Identity calls moto lacks, served on 127.0.0.1 (see tests/eks_stub.py)."""
    from eks_stub import EksStub

    stub = EksStub(moto_server)
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture
def stub_env(env, eks_stub):
    """``env`` with EKS (and IAM) aimed at the stub, which passes what it does not serve to moto."""
    eks_stub.reset()
    return {**env, "AWS_ENDPOINT_URL_EKS": eks_stub.endpoint, "AWS_ENDPOINT_URL_IAM": eks_stub.endpoint}


@pytest.fixture
def proxy(moto_server):
    """The fault proxy (tests/faultproxy.py) in front of the moto server, rules cleared."""
    return faultproxy.shared(moto_server)


@pytest.fixture
def via(env, proxy):
    """``env`` with boto3 aimed at the proxy."""
    return {**env, "AWS_ENDPOINT_URL": proxy.url}


@dataclass
class Aws:
    """boto3 clients on the moto server, for arranging and reading back state."""

    endpoint: str

    def client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing-secret",
        )

    @property
    def iam(self):
        return self.client("iam")

    def issuer(self, cluster: str = CLUSTER) -> str:
        return self.client("eks").describe_cluster(name=cluster)["cluster"]["identity"]["oidc"]["issuer"]

    def create_cluster(self, name: str = CLUSTER, provider: bool = True) -> str:
        eks = self.client("eks")
        eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={})
        issuer = self.issuer(name)
        if provider:
            self.create_provider(issuer)
        return issuer

    def create_provider(self, issuer: str) -> None:
        with contextlib.suppress(self.iam.exceptions.EntityAlreadyExistsException):
            self.iam.create_open_id_connect_provider(
                Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["9" * 40]
            )

    def create_bucket(self, name: str = BUCKET) -> None:
        self.client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})

    def trust(self, role: str) -> dict:
        return self.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]

    def policy_document(self, arn: str) -> dict:
        version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]

    def attached(self, role: str) -> list[str]:
        return [p["PolicyArn"] for p in self.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]


@pytest.fixture
def aws(env, moto_server) -> Aws:
    return Aws(moto_server)


@pytest.fixture
def eks(aws) -> Aws:
    """A cluster prod-eu with its IAM OIDC provider and the fixtures' bucket."""
    aws.create_cluster()
    aws.create_bucket()
    return aws


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


def run_cli(args: list[str], env: dict[str, str], stdin: bytes = b"", timeout: float = 120) -> Run:
    """Run the real CLI in a subprocess, as Helm would."""
    done = subprocess.run(
        [sys.executable, "-m", "velero_irsa_postrender", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def helm_binary(major: int) -> Path:
    path = CACHE / f"helm{major}" / "helm"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Helm {major} missing at {path}: .ci/get-helm.sh should have fetched it")
        pytest.skip(f"Helm {major} not fetched (run sh .ci/get-helm.sh)")
    return path


@pytest.fixture
def launcher(tmp_path) -> Path:
    """A directory holding a `velero-irsa` executable, as install.sh puts one on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "velero-irsa"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m velero_irsa_postrender "$@"\n')
    script.chmod(0o755)
    return bin_dir


def replay_chart(tmp_path: Path, manifest: bytes, name: str = "replay") -> Path:
    """A chart that renders exactly the given manifest: lets real Helm replay a Velero fixture."""
    chart = tmp_path / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 0.1.0\n")
    (chart / "manifest.yaml").write_bytes(manifest)
    (chart / "templates" / "replay.yaml").write_text('{{ .Files.Get "manifest.yaml" }}\n')
    return chart


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


@pytest.fixture(scope="session")
def plugin_wheels(tmp_path_factory) -> Path:
    """Wheels for install.sh's offline install (VELERO_IRSA_WHEELS): ours fresh, dependencies cached."""
    from helm_plugin import build_wheels

    return build_wheels(tmp_path_factory.mktemp("wheels"))
