"""Hostile and malformed input: a valid stream and exit 0, or one line, exit 1 and nothing on stdout.

Hypothesis generates manifest streams and config files in-process (fast); a fixed sample of the
same kinds goes through the real CLI in a subprocess. ``--role-arn`` keeps AWS out of it, and an
endpoint on a closed port catches any call that would slip through anyway.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys

import pytest
import yaml
from conftest import fixture_bytes, run_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from velero_irsa_postrender import stream
from velero_irsa_postrender.errors import VeleroIrsaError
from velero_irsa_postrender.postrender import post_render
from velero_irsa_postrender.settings import Settings, resolve

ARN = "arn:aws:iam::123456789012:role/velero"
IRSA = fixture_bytes("template-irsa.yaml")
CHUNKS = [document.raw for document in stream.split(IRSA)]
SERVER = next(chunk for chunk in CHUNKS if b"kind: Deployment" in chunk and b"- server" in chunk)
GUARD_SECONDS = 20
STREAM_EXAMPLES = 300
CONFIG_EXAMPLES = 200
RUNS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,  # no_aws only sets variables that never change between examples
    ],
)


class Hang(Exception):
    pass


@contextlib.contextmanager
def guard(seconds: int = GUARD_SECONDS):
    """Fail instead of hanging; the timer is a safety net, never a speed check."""

    def expired(*_):
        raise Hang(f"no answer within {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(autouse=True)
def no_aws(monkeypatch, tmp_path):
    """Any AWS call would meet a closed port once, and fail."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "VELERO_IRSA_CONFIG", "HELM_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def check_post_render(data: bytes, settings_: Settings | None = None) -> bytes | None:
    """The property: a stream that differs from the input only in the server ServiceAccount, or one line.

    Documents we have no reason to read pass through untouched, valid YAML or not, as Helm gave them.
    """
    effective = settings_ or Settings(role_arn=ARN)
    with guard():
        try:
            rendered, _ = post_render(data, effective)
        except VeleroIrsaError as error:
            assert str(error) and len(str(error).splitlines()) == 1, str(error)
            return None
    out = joined(rendered)
    before, after = stream.split(data), stream.split(out)
    assert len(before) == len(after)
    changed = [bytes(new.raw) for old, new in zip(before, after, strict=True) if bytes(old.raw) != bytes(new.raw)]
    assert len(changed) <= 1
    for document in changed:
        assert stream.load(document, "the annotated ServiceAccount")
    if effective.mode != "pod-identity":
        assert ARN.encode() in out
    return out


def joined(rendered) -> bytes:
    """post_render's stream, whether it comes as bytes or as pieces to write in order."""
    return rendered if isinstance(rendered, bytes) else b"".join(bytes(piece) for piece in rendered)


# -- generators --------------------------------------------------------------------------------

names = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=3),
    st.just("velero-server"),
    st.just("velero"),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30), names)
keys = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4))
kinds = st.sampled_from(["Deployment", "ServiceAccount", "BackupStorageLocation", "List", "ConfigMap", 7, None])


@st.composite
def objects(draw) -> dict:
    """A Kubernetes-shaped object with any of its parts missing, mistyped or strange."""
    body: dict = {}
    if draw(st.booleans()):
        body["kind"] = draw(kinds)
    if draw(st.booleans()):
        body["metadata"] = draw(
            st.one_of(
                st.fixed_dictionaries({"name": names}, optional={"namespace": names, "annotations": values}),
                values,
            )
        )
    if body.get("kind") == "List" or draw(st.booleans()):
        body["items"] = draw(st.lists(st.deferred(objects), max_size=3))
    if draw(st.booleans()):
        body["spec"] = draw(values)
    return body


def billion_laughs(width: int, levels: int) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _in_a_server(hostile: bytes) -> bytes:
    """A second Velero server, or the server's ServiceAccount again, carrying the hostile part: read for sure."""
    indented = b"\n".join(b"      " + line for line in hostile.splitlines())
    if hostile.startswith(b"kind: ServiceAccount"):
        return b"metadata:\n  name: velero-server\n  namespace: velero\n" + hostile
    return (
        b"apiVersion: apps/v1\nmetadata: {name: evil, namespace: velero}\nspec:\n  template:\n    spec:\n"
        b"      serviceAccountName: velero-server\n      containers:\n      - {name: velero, args: [server]}\n"
        b"      x-hostile:\n" + indented
    )


@st.composite
def servers(draw) -> bytes:
    """Another Velero server Deployment, its names drawn from anything YAML can hold."""
    pod = {"serviceAccountName": draw(names), "containers": [{"name": "velero", "args": ["server"]}]}
    metadata = {"name": draw(names), "namespace": draw(names)}
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": {"template": {"spec": pod}}}
    return yaml.safe_dump(body, allow_unicode=True).encode()


def placed_bomb(place: str, width: int, levels: int) -> bytes:
    """An alias chain where the post-renderer must look: server args, ServiceAccount labels, a bucket."""
    laughs, alias = billion_laughs(width, levels), f"*l{levels - 1}"
    if place == "args":
        pod = f"spec: {{template: {{spec: {{containers: [{{name: velero, args: [server, {alias}]}}]}}}}}}"
        return f"apiVersion: apps/v1\nkind: Deployment\n{laughs}metadata: {{name: evil}}\n{pod}\n".encode()
    if place == "labels":
        metadata = f"metadata: {{name: velero-server, namespace: velero, labels: {alias}}}"
        return f"kind: ServiceAccount\n{laughs}{metadata}\n".encode()
    return f"kind: BackupStorageLocation\n{laughs}spec: {{provider: {alias}, objectStorage: {{bucket: b}}}}\n".encode()


@st.composite
def hostile_documents(draw) -> bytes:
    choice = draw(st.sampled_from(["server", "bomb", "other", "other"]))
    if choice == "server":
        return draw(servers())
    if choice == "bomb":
        place = draw(st.sampled_from(["args", "labels", "provider"]))
        return placed_bomb(place, draw(st.integers(2, 11)), draw(st.integers(1, 11)))
    document = draw(_hostile_parts())
    return _in_a_server(document) if draw(st.booleans()) else document


@st.composite
def _hostile_parts(draw) -> bytes:
    kind = draw(
        st.sampled_from(
            ["object", "garbage", "tokens", "deep flow", "deep block", "bomb", "huge", "duplicates", "alias names"]
        )
    )
    if kind == "object":
        return yaml.safe_dump(draw(objects()), allow_unicode=True).encode()
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    if kind == "tokens":
        pieces = [": ", "- ", "\n", "  ", "\t", "&a ", "*a", "[", "]", "{", "}", "'", '"', "#", "!!", "|", ">", "? "]
        pieces += ["kind: ", "Deployment", "ServiceAccount", "List", "metadata:", "name: ", "---", "\\", "%YAML 1.1"]
        return "".join(draw(st.lists(st.sampled_from(pieces), max_size=60))).encode()
    if kind == "deep flow":
        depth = draw(st.integers(1, 3000))
        return b"kind: Deployment\nspec: " + b"[" * depth + b"]" * draw(st.sampled_from([0, depth]))
    if kind == "deep block":
        depth = draw(st.integers(1, 400))
        return b"kind: ServiceAccount\nmetadata:\n" + b"".join(b" " * (i + 1) + b"a:\n" for i in range(depth))
    if kind == "bomb":
        width, levels = draw(st.integers(2, 12)), draw(st.integers(1, 12))
        return (f"kind: Deployment\n{billion_laughs(width, levels)}spec: *l{levels - 1}\n").encode()
    if kind == "huge":
        size = draw(st.sampled_from([10**4, 10**5, 10**6]))
        return b"kind: ServiceAccount\nmetadata:\n  name: " + b"x" * size + b"\n"
    if kind == "duplicates":
        return b"kind: ServiceAccount\nkind: Deployment\nmetadata:\n  name: a\nmetadata:\n  name: velero-server\n"
    return b"kind: ServiceAccount\nmetadata:\n  name: &n velero-server\n  namespace: *n\n"


def as_list(chunks: list[bytes]) -> bytes:
    """Wrap the server's Deployment and ServiceAccount in one ``kind: List``."""
    bodies = [yaml.safe_load(chunk) for chunk in chunks]
    wanted = [b for b in bodies if isinstance(b, dict) and b.get("kind") in ("Deployment", "ServiceAccount")]
    rest = [c for c, b in zip(chunks, bodies, strict=True) if b not in wanted]
    wrapper = {"apiVersion": "v1", "kind": "List", "items": wanted}
    return b"".join(rest) + b"---\n" + yaml.safe_dump(wrapper).encode()


@st.composite
def streams(draw) -> bytes:
    chunks = list(CHUNKS) if draw(st.booleans()) else draw(st.lists(st.sampled_from(CHUNKS), max_size=6))
    if draw(st.booleans()):
        chunks = [as_list(chunks)]
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(chunks)))
        chunks.insert(position, b"---\n" + draw(hostile_documents()) + b"\n")
    data = b"".join(chunks)
    if draw(st.booleans()):
        data = data.replace(b"\n", b"\r\n")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.booleans()):
        data = data.replace(b"  ", b"\t", draw(st.integers(1, 5)))
    return data


# -- the properties ----------------------------------------------------------------------------


@settings(RUNS, max_examples=STREAM_EXAMPLES)
@given(streams())
@example(IRSA)
@example(IRSA.replace(b"\n", b"\r\n"))
@example(b"\xef\xbb\xbf" + IRSA)
@example(IRSA + SERVER.replace(b"  name: velero\n", b'  name: "velero\\nerror: forged\\u2028"\n', 1))
def test_any_stream_gives_a_valid_stream_or_one_line(data):
    check_post_render(data)


KEYS = ["cluster", "namespace", "service-account", "bucket", "bucket-prefix", "role-path", "tag", "mode"]
KEYS += ["kms-key-arn", "max-session-duration", "create", "adopt", "dry-run", "output", "region", "unknown-key"]
config_keys = st.sampled_from(KEYS)


@st.composite
def configs(draw) -> bytes:
    kind = draw(st.sampled_from(["mapping", "garbage", "tokens", "bomb", "deep", "duplicates", "non-string keys"]))
    if kind == "mapping":
        return yaml.safe_dump(draw(st.dictionaries(config_keys, values, max_size=6)), allow_unicode=True).encode()
    if kind == "garbage":
        return draw(st.binary(max_size=300))
    if kind == "tokens":
        return draw(hostile_documents())
    if kind == "bomb":
        return (billion_laughs(draw(st.integers(2, 10)), draw(st.integers(1, 10))) + "cluster: *l0\n").encode()
    if kind == "deep":
        depth = draw(st.integers(1, 3000))
        return b"tag: " + b"{a: " * depth + b"}" * depth
    if kind == "duplicates":
        return b"namespace: velero\nnamespace: backup\n"
    return b"1: x\nnull: y\n[a]: z\n"


@settings(RUNS, max_examples=CONFIG_EXAMPLES)
@given(text=configs())
def test_any_config_file_gives_settings_or_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("config") / "velero-irsa.yaml"
    path.write_bytes(text)
    with guard():
        try:
            effective = resolve({"role-arn": ARN}, str(path))
        except VeleroIrsaError as error:
            assert len(str(error).splitlines()) == 1, str(error)
            return
    check_post_render(IRSA, effective)


# -- the real CLI on a fixed sample ------------------------------------------------------------

SAMPLE = {
    "the fixture": IRSA,
    "crlf and bom": b"\xef\xbb\xbf" + IRSA.replace(b"\n", b"\r\n"),
    "tabs": IRSA.replace(b"  ", b"\t", 3),
    "list wrapper": as_list(CHUNKS),
    "binary garbage": bytes(range(256)) * 4,
    "deep flow": b"kind: Deployment\nspec: " + b"[" * 100000,
    "deep block": b"kind: ServiceAccount\n" + b"- " * 50000 + b"x\n",
    "huge scalar": IRSA + b"---\nkind: ServiceAccount\nmetadata:\n  name: " + b"x" * 2_000_000 + b"\n",
    "duplicate keys": IRSA + b"---\nkind: ServiceAccount\nkind: Deployment\nmetadata: {name: a}\nmetadata: {name: b}\n",
    "no metadata": IRSA + b"---\nkind: ServiceAccount\n---\nkind: List\nitems: [{kind: Deployment}]\n",
    "non-string names": IRSA + b"---\nkind: ServiceAccount\nmetadata: {name: [1, 2], namespace: 3}\n",
    "newline in a name": IRSA + SERVER.replace(b"  name: velero\n", b'  name: "velero\\nerror: forged"\n', 1),
    "recursive alias": IRSA + b"---\nkind: ServiceAccount\nmetadata: &m {name: x, self: *m}\n",
}


@pytest.mark.parametrize("case", sorted(SAMPLE))
def test_the_cli_answers_hostile_streams_with_a_stream_or_one_line(case, offline_env):
    result = run_cli(["--role-arn", ARN], offline_env, SAMPLE[case], timeout=120)
    assert "Traceback" not in result.stderr
    if result.code == 0:
        changed = [d.raw for d in stream.split(result.stdout) if bytes(d.raw) not in SAMPLE[case]]
        assert len(changed) == 1 and ARN.encode() in bytes(changed[0])
        assert stream.load(changed[0], "the annotated ServiceAccount")
        return
    assert (result.code, result.stdout) == (1, b""), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def _limit_memory() -> None:
    one_gib = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (one_gib, one_gib))


LAUGHS = billion_laughs(10, 10)  # ten levels of ten: 10**10 "lol" once expanded
BOMBS = {
    "in the server Deployment": IRSA.replace(b"kind: Deployment\n", f"kind: Deployment\n{LAUGHS}".encode(), 1),
    "in the server ServiceAccount": IRSA.replace(
        b"  name: velero-server\n  namespace: velero\n",
        b"  name: velero-server\n  namespace: velero\n  l: *l9\n",
        1,
    ).replace(b"kind: ServiceAccount\n", f"kind: ServiceAccount\n{LAUGHS}".encode(), 1),
    "in a document nobody reads": IRSA + f"---\nkind: ConfigMap\n{LAUGHS}data: *l9\n".encode(),
}


@pytest.mark.parametrize("where", sorted(BOMBS))
def test_a_billion_laughs_never_expands(where, offline_env):
    """Refused where we must read it; passed through unread (so unexpanded) anywhere else. 1 GiB at most."""
    done = subprocess.run(
        [sys.executable, "-m", "velero_irsa_postrender", "--role-arn", ARN],
        input=BOMBS[where],
        capture_output=True,
        env=offline_env,
        timeout=120,
        preexec_fn=_limit_memory,
        check=False,
    )
    stderr = done.stderr.decode()
    if where == "in a document nobody reads":
        assert done.returncode == 0, stderr
        assert LAUGHS.encode() in done.stdout and ARN.encode() in done.stdout
        return
    assert (done.returncode, done.stdout) == (1, b""), stderr
    assert len(stderr.splitlines()) == 1 and "YAML bomb" in stderr, stderr


CONFIG_SAMPLE = {
    "binary": bytes(range(256)),
    "bomb": (billion_laughs(10, 10) + "cluster: *l9\n").encode(),
    "deep": b"tag: " + b"{a: " * 5000 + b"}" * 5000,
    "two documents": b"cluster: a\n---\ncluster: b\n",
    "non-string keys": b"1: x\nnull: y\n",
    "a list": b"- cluster\n- prod\n",
}


@pytest.mark.parametrize("case", sorted(CONFIG_SAMPLE))
def test_the_cli_answers_hostile_config_files_with_one_line(case, offline_env, tmp_path):
    config = tmp_path / "velero-irsa.yaml"
    config.write_bytes(CONFIG_SAMPLE[case])
    result = run_cli(["--role-arn", ARN, "--config", str(config)], offline_env, IRSA, timeout=120)
    assert (result.code, result.stdout) == (1, b""), result.stderr
    assert len(result.stderr.splitlines()) == 1 and "config file" in result.stderr, result.stderr
