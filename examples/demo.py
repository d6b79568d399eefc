"""Run velero-irsa end to end on the bundled chart, against a local moto server (no AWS account).

    sh .ci/setup.sh && .venv/bin/python examples/demo.py

Starts moto on 127.0.0.1, creates an EKS cluster "demo", its IAM OIDC provider and the backup
bucket there, then runs the real `helm template` with `--post-renderer velero-irsa` and shows the
annotated ServiceAccount and the IAM role's trust policy as IAM holds it.
"""

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import yaml
from moto.server import ThreadedMotoServer

HERE = Path(__file__).resolve().parent
HELM = Path(os.environ.get("HELM_BIN", Path.home() / ".cache" / "velero-irsa" / "helm3" / "helm"))


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    os.environ.update(env)

    eks, iam = boto3.client("eks"), boto3.client("iam")
    eks.create_cluster(name="demo", roleArn="arn:aws:iam::123456789012:role/eks", resourcesVpcConfig={})
    issuer = eks.describe_cluster(name="demo")["cluster"]["identity"]["oidc"]["issuer"]
    iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["0" * 40])
    boto3.client("s3").create_bucket(
        Bucket="velero-demo-backups", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )

    with tempfile.TemporaryDirectory() as bin_dir:
        launcher = Path(bin_dir) / "velero-irsa"
        launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m velero_irsa_postrender "$@"\n')
        launcher.chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        command = [
            str(HELM),
            "template",
            "velero",
            str(HERE / "chart"),
            "-n",
            "velero",
            "--post-renderer",
            "velero-irsa",
            "--post-renderer-args",
            "--cluster=demo",
        ]
        print("$", " ".join(command[1:]).replace(str(HERE), "examples"), file=sys.stderr)
        done = subprocess.run(command, env=env, check=True, capture_output=True)
        sys.stderr.write(done.stderr.decode())
        rendered = done.stdout

    account = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ServiceAccount")
    print("\n# The ServiceAccount Helm would install:\n" + yaml.safe_dump(account, sort_keys=False))
    role = iam.get_role(RoleName="AWSIRSAdemoveleroVelero")["Role"]
    print("# The role's trust policy, read back from IAM:")
    print(json.dumps(role["AssumeRolePolicyDocument"], indent=2))
    server.stop()


if __name__ == "__main__":
    main()
