"""The annotation goes in by text edit; every other byte stays, and the result parses as intended."""

import pytest
import yaml
from conftest import fixture_bytes

from velero_irsa_postrender import stream
from velero_irsa_postrender.inject import current_annotation, set_annotation

ARN = "arn:aws:iam::123456789012:role/AWSIRSAprod-euveleroVelero"


def edit(raw: bytes, value=ARN) -> bytes:
    documents = stream.split(raw)
    stream.parse_candidates(documents)
    document = documents[0]
    return set_annotation(document, document.objects[0], value)


def annotations(raw: bytes) -> dict:
    return yaml.safe_load(raw)["metadata"].get("annotations")


def test_annotations_block_is_added_after_the_last_metadata_line():
    out = edit(b"---\n# Source: x\nkind: ServiceAccount\nmetadata:\n  name: a\n  labels:\n    k: v\nautomount: true\n")
    assert out == (
        b"---\n# Source: x\nkind: ServiceAccount\nmetadata:\n  name: a\n  labels:\n    k: v\n"
        b'  annotations:\n    eks.amazonaws.com/role-arn: "' + ARN.encode() + b'"\nautomount: true\n'
    )


def test_existing_annotations_keep_order_and_quoting():
    raw = b"kind: ServiceAccount\nmetadata:\n  name: a\n  annotations:\n    team: 'platform'\n    x: \"1\"\n"
    out = edit(raw)
    assert out.startswith(raw)
    assert annotations(out) == {"team": "platform", "x": "1", "eks.amazonaws.com/role-arn": ARN}


def test_a_stale_role_arn_is_replaced_in_place():
    raw = (
        b"kind: ServiceAccount\nmetadata:\n  annotations:\n    eks.amazonaws.com/role-arn: arn:aws:iam::"
        b"111111111111:role/old\n    b: c\n  name: a\n"
    )
    out = edit(raw)
    assert out.count(b"role-arn") == 1
    assert annotations(out) == {"eks.amazonaws.com/role-arn": ARN, "b": "c"}


def test_empty_flow_annotations_become_a_block():
    out = edit(b"kind: ServiceAccount\nmetadata:\n  name: a\n  annotations: {}\n")
    assert annotations(out) == {"eks.amazonaws.com/role-arn": ARN}


def test_flow_style_metadata_falls_back_to_a_faithful_reserialisation():
    raw = b"---\n# Source: keep me\nkind: ServiceAccount\nmetadata: {name: a, labels: {x: 'y'}}\n"
    out = edit(raw)
    assert out.startswith(b"---\n# Source: keep me\n")
    assert yaml.safe_load(out) == {
        "kind": "ServiceAccount",
        "metadata": {"name": "a", "labels": {"x": "y"}, "annotations": {"eks.amazonaws.com/role-arn": ARN}},
    }


def test_crlf_and_four_space_indentation_are_kept():
    raw = b"kind: ServiceAccount\r\nmetadata:\r\n    name: a\r\n    annotations:\r\n        t: p\r\n"
    out = edit(raw)
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert b'        eks.amazonaws.com/role-arn: "' in out


def test_helm4_filename_annotation_survives():
    raw = fixture_bytes("postrender-stdin-helm4-irsa.yaml")
    documents = stream.split(raw)
    stream.parse_candidates(documents)
    account = next(d for d in documents if b"serviceaccount-server.yaml" in d.raw)
    out = set_annotation(account, account.objects[0], ARN)
    assert annotations(out) == {
        "postrenderer.helm.sh/postrender-filename": "velero/templates/serviceaccount-server.yaml",
        "eks.amazonaws.com/role-arn": ARN,
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"kind: ServiceAccount\nmetadata:\n  name: a\n  annotations:\n    eks.amazonaws.com/role-arn: x\n    k: v\n",
        b"kind: ServiceAccount\nmetadata:\n  name: a\n  annotations:\n    eks.amazonaws.com/role-arn: x\n",
    ],
)
def test_removing_the_annotation_leaves_the_rest(raw):
    out = edit(raw, None)
    assert current_annotation(yaml.safe_load(out)) is None
    assert yaml.safe_load(out)["metadata"]["name"] == "a"


def test_a_flow_style_account_on_the_marker_line_keeps_its_marker():
    stream_bytes = b"---\nkind: ConfigMap\nmetadata: {name: before}\n--- {kind: ServiceAccount, metadata: {name: a}}\n"
    documents = stream.split(stream_bytes)
    stream.parse_candidates(documents)
    account = documents[1]
    out = set_annotation(account, account.objects[0], ARN)
    parsed = list(yaml.safe_load_all(bytes(documents[0].raw) + out))
    assert [d["kind"] for d in parsed] == ["ConfigMap", "ServiceAccount"]
    assert parsed[1]["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ARN}
