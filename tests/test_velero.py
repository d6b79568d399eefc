"""Finding the Velero server, its ServiceAccount and its buckets in real chart output."""

import pytest
from conftest import fixture_bytes

from velero_irsa_postrender import stream
from velero_irsa_postrender.errors import ManifestError
from velero_irsa_postrender.velero import Bucket, attach_service_account, find_buckets, find_server


def documents_of(raw: bytes):
    documents = stream.split(raw)
    stream.parse_candidates(documents)
    return documents


@pytest.mark.parametrize(
    ("name", "namespace", "account"),
    [
        ("template-irsa.yaml", "velero", "velero-server"),
        ("template-custom-sa.yaml", "velero", "edp-velero"),
        ("postrender-stdin-helm3-irsa.yaml", "velero", "velero-server"),
        ("postrender-stdin-helm4-irsa.yaml", "velero", "velero-server"),
        ("template-irsa-with-crds.yaml", "velero", "velero-server"),
    ],
)
def test_server_service_account_is_the_one_the_deployment_runs_as(name, namespace, account):
    documents = documents_of(fixture_bytes(name))
    server = find_server(documents)
    attach_service_account(server, documents)
    assert (server.namespace, server.service_account) == (namespace, account)
    assert server.service_account_object["metadata"]["name"] == account


def test_the_upgrade_crds_hook_account_is_never_chosen():
    documents = documents_of(fixture_bytes("template-irsa.yaml"))
    server = find_server(documents)
    attach_service_account(server, documents)
    assert server.service_account == "velero-server"
    assert b"upgrade-crds" not in server.service_account_document.raw


def test_precreated_service_account_is_reported_with_the_fix():
    documents = documents_of(fixture_bytes("template-no-sa.yaml"))
    server = find_server(documents)
    assert (server.namespace, server.service_account) == ("backup", "velero-precreated")
    with pytest.raises(ManifestError, match=r"serviceAccount\.server\.create"):
        attach_service_account(server, documents)


def test_static_credentials_defeat_irsa_and_are_refused():
    with pytest.raises(ManifestError, match=r"credentials\.useSecret=false"):
        find_server(documents_of(fixture_bytes("template-default.yaml")))


def test_no_server_and_two_servers_are_errors():
    with pytest.raises(ManifestError, match="no Velero server"):
        find_server(documents_of(b"kind: ConfigMap\nmetadata: {name: x}\n"))
    deployment = fixture_bytes("template-irsa.yaml").split(b"# Source: velero/templates/deployment.yaml")[1]
    deployment = deployment.split(b"\n---")[0]
    with pytest.raises(ManifestError, match="two or more"):
        find_server(
            documents_of(b"---" + deployment + b"\n---" + deployment.replace(b"name: velero\n", b"name: v2\n", 1))
        )


def test_buckets_come_from_aws_backup_storage_locations():
    assert find_buckets(documents_of(fixture_bytes("template-irsa.yaml"))) == [
        Bucket("velero-prod-eu", "", "eu-central-1")
    ]
    extra = (
        b"---\nkind: BackupStorageLocation\nspec:\n  provider: velero.io/aws\n  objectStorage:\n"
        b"    bucket: second\n    prefix: /cluster-a/\n---\nkind: BackupStorageLocation\n"
        b"spec:\n  provider: gcp\n  objectStorage: {bucket: elsewhere}\n"
    )
    buckets = find_buckets(documents_of(fixture_bytes("template-irsa.yaml") + extra))
    assert buckets[1:] == [Bucket("second", "cluster-a", "")]
