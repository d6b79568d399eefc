"""Splitting keeps every byte; candidate scanning never misses what a full parse would find."""

import pytest
import yaml
from conftest import FIXTURES

from velero_irsa_postrender import stream
from velero_irsa_postrender.errors import ManifestError

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.yaml"))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_split_then_join_gives_back_the_exact_bytes(name):
    raw = (FIXTURES / name).read_bytes()
    assert b"".join(d.raw for d in stream.split(raw)) == raw


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_candidates_cover_every_interesting_document_a_full_parse_finds(name):
    raw = (FIXTURES / name).read_bytes()
    documents = stream.split(raw)
    stream.parse_candidates(documents)
    scanned = [o for d in documents for o in d.objects]
    wanted = {"Deployment", "ServiceAccount", "BackupStorageLocation"}
    full = [o for o in yaml.safe_load_all(raw) if isinstance(o, dict) and o.get("kind") in wanted]
    assert [o for o in scanned if o.get("kind") in wanted] == full


def test_markers_with_trailing_content_and_crlf_split_correctly():
    raw = b"a: 1\r\n--- # first\r\nb: 2\r\n---\r\n--- {c: 3}\n"
    documents = stream.split(raw)
    assert [d.raw for d in documents] == [b"a: 1\r\n", b"--- # first\r\nb: 2\r\n", b"---\r\n", b"--- {c: 3}\n"]
    assert [d.line for d in documents] == [1, 2, 4, 5]


def test_a_line_that_only_starts_with_dashes_is_not_a_marker():
    documents = stream.split(b"a: |\n  ---\nb: ----x\n")
    assert len(documents) == 1


def test_blank_documents_are_recognised():
    documents = stream.split(b"---\n# only a comment\n---\n\n...\n")
    assert all(stream.is_blank(d) for d in documents)
    assert not stream.is_blank(stream.split(b"--- {a: 1}\n")[0])


def test_invalid_yaml_names_the_line():
    documents = stream.split(b"a: 1\n---\nkind: ServiceAccount\nmetadata: [unclosed\n")
    with pytest.raises(ManifestError, match="line 2 is not valid YAML"):
        stream.parse_candidates(documents)


def test_billion_laughs_is_refused_before_expansion():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(12)
    )
    with pytest.raises(ManifestError, match="aliases"):
        stream.load(("kind: List\n" + bomb).encode(), "the bomb")


def test_list_wrappers_are_unwrapped():
    documents = stream.split(b"kind: List\nitems:\n- kind: ServiceAccount\n  metadata: {name: a}\n")
    stream.parse_candidates(documents)
    assert [o.get("kind") for o in documents[0].objects] == ["List", "ServiceAccount"]
