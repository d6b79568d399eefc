"""Cheap scanning finds what a full parse finds: the server, its ServiceAccount, the buckets.

The post-renderer parses only the chunks its byte scan says may matter. Here every stream is also
run with every chunk parsed, and the two must agree exactly: same server Deployment, same
ServiceAccount document, same buckets, or the same error. Streams are the real fixtures, a
generated large stream, and hypothesis-built streams that spell kinds and names every way YAML
allows (quoted, tagged, escaped, split by an escaped line break, inside List wrappers, in JSON).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from unittest import mock

import pytest
import yaml
from conftest import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import streams
from velero_irsa_postrender import postrender, stream
from velero_irsa_postrender.errors import VeleroIrsaError
from velero_irsa_postrender.settings import Settings

ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.yaml"))


@contextmanager
def parse_everything():
    """Make every chunk a candidate for every question: the full-parse reference."""
    with mock.patch.object(stream, "_scan", lambda _stream, starts, _ends: [frozenset({stream.ESCAPED})] * len(starts)):
        yield


def outcome(raw: bytes, namespace: str | None = None):
    """What post-render would act on, in comparable form, or the error it would stop with."""
    try:
        _, server, target = postrender.locate(raw, Settings(namespace=namespace))
    except VeleroIrsaError as error:
        return ("error", str(error))
    document = server.service_account_document
    return ("ok", server.deployment, server.service_account_object, document.start, document.end, target)


def assert_scan_agrees(raw: bytes) -> None:
    scanned = outcome(raw)
    with parse_everything():
        full = outcome(raw)
    assert scanned == full


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_scanning_a_fixture_finds_what_a_full_parse_finds(name):
    assert_scan_agrees((FIXTURES / name).read_bytes())


def test_scanning_a_large_generated_stream_finds_what_a_full_parse_finds():
    raw = streams.large_stream(2, 1000)
    assert_scan_agrees(raw)
    assert outcome(raw)[0] == "ok"


def test_scanning_parses_a_handful_of_the_velero_release_documents_and_nothing_else():
    documents, _, _ = postrender.locate(streams.large_stream(2, 1000), Settings())
    parsed = [d for d in documents if d.parsed is not None]
    kinds = {o.get("kind") for d in parsed for o in d.objects}
    assert {"Deployment", "ServiceAccount", "BackupStorageLocation"} <= kinds
    assert len(parsed) <= 8
    assert all(d.raw in streams.fixture() for d in parsed)  # none of the 1000 generated documents


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"- server\n", True),
        (b"args: [velero,server]\n", True),
        (b"args: ['server']\n", True),
        (b"- server # the command\n", True),
        (b"- api-server\n", False),
        (b"- /bin/server\n", False),
        (b"- server-side\n", False),
        (b"- server.v2\n", False),
        (b"- -server\n", False),
        (b"server_x: 1\n", False),
    ],
)
def test_a_scalar_is_found_only_as_a_whole_word(text, found):
    assert stream.Scalar("server").found_in(text, 0, len(text)) is found


def test_split_chunks_are_views_of_the_input_and_pieces_give_it_back():
    raw = streams.fixture()
    documents = stream.split(raw)
    assert all(d.stream is raw for d in documents)
    assert b"".join(stream.pieces(documents)) == raw
    middle = documents[len(documents) // 2]
    rebuilt = b"".join(stream.pieces(documents, middle, b"---\nnew: 1\n"))
    assert rebuilt == raw[: middle.start] + b"---\nnew: 1\n" + raw[middle.end :]


# -- generated streams ------------------------------------------------------------------------

CONTINUATION = "\\\n                    "  # an escaped line break, then the next line's indentation


def spellings(text: str) -> st.SearchStrategy[str]:
    """Every way to write ``text`` as a YAML scalar in a block mapping value or sequence entry."""
    variants = [text, f"'{text}'", f'"{text}"', f"!!str {text}"]
    for index, char in enumerate(text):
        head, tail = text[:index], text[index + 1 :]
        variants += [
            f'"{head}\\x{ord(char):02x}{tail}"',
            f'"{head}\\u{ord(char):04X}{tail}"',
            f'"{head}\\U{ord(char):08x}{tail}"',
        ]
        if index:
            variants.append(f'"{head}{CONTINUATION}{text[index:]}"')
    return st.one_of(st.just(text), st.sampled_from(variants))  # plain half the time, as charts write it


def json_spelling(text: str, escape: bool) -> str:
    """``text`` as a JSON string, every letter \\u-escaped when ``escape``."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"' if escape else json.dumps(text)


ACCOUNTS = ["velero-server", "velero-server-upgrade-crds", "velero", "edp-velero", "default"]
NOT_SERVER = ["api-server", "server-side", "--server", "serverless", "Server", "/bin/server"]


@st.composite
def deployment(draw) -> str:
    runs_server = draw(st.booleans())
    word = draw(spellings("server")) if runs_server else draw(st.sampled_from(NOT_SERVER))
    account = draw(spellings(draw(st.sampled_from(ACCOUNTS))))
    namespace = draw(st.sampled_from(["velero", "backup", None]))
    argv = draw(
        st.sampled_from(
            [
                f"          command:\n            - /velero\n          args:\n            - {word}\n",
                f"          args:\n            - {word}\n            - --features=\n",
                f"          command: [velero, {word}]\n",
            ]
        )
    )
    lines = [
        "apiVersion: apps/v1",
        f"kind: {draw(spellings('Deployment'))}",
        "metadata:",
        f"  name: {draw(st.sampled_from(['velero', 'app']))}",
        *([f"  namespace: {namespace}"] if namespace else []),
        "spec:",
        "  template:",
        "    spec:",
        f"      serviceAccountName: {account}",
        "      containers:",
        "        - name: velero",
        "          image: velero/velero:v1.18.1",
    ]
    return "\n".join(lines) + "\n" + argv


@st.composite
def service_account(draw) -> str:
    lines = [
        "apiVersion: v1",
        f"kind: {draw(spellings('ServiceAccount'))}",
        "metadata:",
        f"  name: {draw(spellings(draw(st.sampled_from(ACCOUNTS))))}",
    ]
    namespace = draw(st.sampled_from(["velero", "backup", None]))
    if namespace:
        lines.append(f"  namespace: {namespace}")
    if draw(st.booleans()):
        lines += ["  annotations:", "    eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/old"]
    return "\n".join(lines) + "\n"


@st.composite
def storage_location(draw) -> str:
    bucket = draw(st.sampled_from(["velero-prod-eu", "other-bucket"]))
    provider = draw(st.sampled_from(["aws", "velero.io/aws", "gcp"]))
    return (
        "apiVersion: velero.io/v1\n"
        f"kind: {draw(spellings('BackupStorageLocation'))}\n"
        "metadata:\n  name: default\n  namespace: velero\n"
        f"spec:\n  provider: {provider}\n  objectStorage:\n    bucket: {bucket}\n"
        "  config:\n    region: eu-central-1\n"
    )


@st.composite
def list_wrapper(draw) -> str:
    """A List of ServiceAccounts / BSLs / Deployments, in JSON flow style, kinds maybe \\u-escaped."""
    escape = draw(st.booleans())
    account = draw(st.sampled_from(ACCOUNTS))
    items = [
        f'{{"kind": {json_spelling("ServiceAccount", escape)}, '
        f'"metadata": {{"name": {json_spelling(account, escape)}, "namespace": "velero"}}}}',
        f'{{"kind": {json_spelling("BackupStorageLocation", escape)}, "spec": {{"provider": "aws", '
        '"objectStorage": {"bucket": "listed-bucket"}}}',
    ]
    if draw(st.booleans()):
        items.append(
            f'{{"kind": {json_spelling("Deployment", escape)}, '
            '"metadata": {"name": "velero", "namespace": "velero"}, '
            f'"spec": {{"template": {{"spec": {{"serviceAccountName": "{account}", '
            f'"containers": [{{"name": "velero", "args": [{json_spelling("server", escape)}]}}]}}}}}}}}'
        )
    kind = draw(st.sampled_from(["List", "ServiceAccountList", "L\\x69st"]))
    return f'apiVersion: v1\nkind: "{kind}"\nitems: [{", ".join(items)}]\n'


@st.composite
def anchored_list(draw) -> str:
    """Kinds given once with an anchor and reused by alias."""
    account = draw(st.sampled_from(ACCOUNTS))
    return (
        "apiVersion: v1\nkind: List\nitems:\n"
        f"  - kind: &k {draw(spellings('ServiceAccount'))}\n"
        "    metadata: {name: unrelated, namespace: velero}\n"
        f"  - kind: *k\n    metadata: {{name: {account}, namespace: velero}}\n"
    )


FILLER = st.sampled_from(
    [
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  text: |\n    ---\n"
        '    kind: Deployment\n    args: [server]\n    a \\x44eployment, \\\\ and a \\"quote\\"\n',
        "# kind: ServiceAccount\n# name: velero-server\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: q}\ndata: {expr: "rate(x{job=\\"api\\"}[5m])"}\n',
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: velero-server\nspec: {type: ClusterIP}\n",
        "{kind: ServiceAccount, metadata: {name: velero-server, namespace: velero}}\n",
        "# only a comment\n",
    ]
)
DOCUMENT = st.one_of(deployment(), service_account(), storage_location(), list_wrapper(), anchored_list(), FILLER)
MARKER = st.sampled_from(["---\n", "--- # next\n", "---   \n"])


@st.composite
def manifest_stream(draw) -> bytes:
    documents = draw(st.lists(DOCUMENT, min_size=1, max_size=8))
    text = "".join(draw(MARKER) + document for document in documents)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text.encode()


@given(manifest_stream())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_scanning_a_generated_stream_finds_what_a_full_parse_finds(raw):
    whole = [body for body in yaml.safe_load_all(raw) if isinstance(body, dict)]
    documents = stream.split(raw)
    for document in documents:
        document.parsed = stream.load(document.view, "a chunk")
    assert [body for d in documents for body in d.parsed if isinstance(body, dict)] == whole
    assert_scan_agrees(raw)


def test_generated_streams_reach_every_outcome():
    """The generator is worth its name: it produces servers found, and each kind of refusal."""
    seen: set[str] = set()

    @given(manifest_stream())
    @settings(max_examples=300, deadline=None, database=None)
    def collect(raw):
        result = outcome(raw)
        seen.add("ok" if result[0] == "ok" else result[1].split(" (")[0][:40])

    collect()
    assert "ok" in seen
    assert any(s.startswith("no Velero server") for s in seen)
    assert any(s.startswith("two or more") for s in seen)


def test_a_kind_counts_only_as_a_whole_scalar():
    raw = b"kind: DaemonSet\nspec: {automountServiceAccountToken: true}\n---\nkind: ServiceAccount\n"
    documents = stream.split(raw)
    assert [d.may_hold([b"ServiceAccount"]) for d in documents] == [False, True]
