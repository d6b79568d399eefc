"""Split a manifest stream into documents without changing a byte, and parse only candidates.

Helm hands a post-renderer one YAML stream. Everything we do not change must come back byte
for byte, so the stream is cut at document markers (a line starting with ``---``) into raw
chunks, and only chunks that can be one of the kinds we look for are parsed at all.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from velero_irsa_postrender.errors import ManifestError

_MARKER = re.compile(rb"^---(?=[ \t\r\n]|$)", re.MULTILINE)

# Kinds worth parsing. A document of one of these kinds must spell the kind somewhere in its
# text, unless the name hides behind a double-quoted escape, so a backslash makes it a
# candidate too. "List" wrappers may carry any of them.
_CANDIDATE_WORDS = (b"Deployment", b"ServiceAccount", b"BackupStorageLocation", b"List", b"\\")

# Alias expansion is where YAML bombs live; real manifests use a handful of aliases at most.
MAX_ALIASES = 100
MAX_DEPTH = 100
# Nodes that aliases may add once expanded: a hundred aliases of aliases still stand for billions.
MAX_ALIAS_EXPANSION = 50_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """One chunk of the stream: its exact bytes, where it starts, and its parsed body if needed."""

    raw: bytes
    line: int
    candidate: bool
    parsed: list[Any] = field(default_factory=list)

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Kubernetes objects in this chunk, with the items of a ``kind: List`` unwrapped."""
        found: list[dict[str, Any]] = []
        for body in self.parsed:
            if not isinstance(body, dict):
                continue
            found.append(body)
            items = body.get("items")
            if str(body.get("kind", "")).endswith("List") and isinstance(items, list):
                found.extend(item for item in items if isinstance(item, dict))
        return found


def split(stream: bytes) -> list[Document]:
    """Cut the stream at document markers; concatenating the ``raw`` parts gives it back."""
    starts = [match.start() for match in _MARKER.finditer(stream)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(stream))

    documents = []
    line = 1
    for begin, end in itertools.pairwise(starts):
        raw = stream[begin:end]
        if raw:
            documents.append(Document(raw, line, any(word in raw for word in _CANDIDATE_WORDS)))
        line += raw.count(b"\n")
    return documents


def parse_candidates(documents: list[Document]) -> None:
    """Parse every candidate chunk; a chunk that is not valid YAML is an error naming its line."""
    for document in documents:
        if document.candidate:
            document.parsed = load(document.raw, f"the document at line {document.line}")


def load(raw: bytes, where: str) -> list[Any]:
    """Parse one chunk with alias and nesting limits, so hostile input fails fast and small."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(
            f"{where} is not UTF-8 text (byte {error.start})",
            "Helm renders UTF-8; check the chart's templates and values",
        ) from None
    try:
        return _compose_all(text)
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise ManifestError(
            f"{where} is not valid YAML ({reason})", "fix the template or values that rendered it"
        ) from None
    except RecursionError:
        raise ManifestError(f"{where} nests too deeply", "real manifests nest a few levels") from None


def load_text(text: str) -> list[Any]:
    """Every document of a YAML text under the same alias and nesting limits; raises yaml.YAMLError."""
    try:
        return _compose_all(text)
    except RecursionError:
        raise yaml.YAMLError(f"nesting deeper than {MAX_DEPTH} levels") from None


def _compose_all(text: str) -> list[Any]:
    loader = _Loader(text)
    try:
        bodies = []
        while loader.check_node():
            node = loader.get_node()
            _check_node(node)
            bodies.append(loader.construct_document(node))
        return bodies
    finally:
        loader.dispose()


def _check_node(root: yaml.Node) -> None:
    """Refuse alias bombs and pathological nesting before anything is constructed."""
    seen: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise yaml.YAMLError(f"nesting deeper than {MAX_DEPTH} levels")
        if id(node) in seen:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (a YAML bomb?)")
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
    if aliases:
        _check_expansion(root, len(seen))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_expansion(root: yaml.Node, distinct: int) -> None:
    """Refuse a document that aliases make recursive, too deep or too big once expanded.

    The composed graph shares aliased nodes, so it stays small; the objects built from it share
    them too, but anything that walks them (comparing, printing) walks the expanded tree.
    """
    done: dict[int, tuple[int, int]] = {}  # node → (expanded size, height)
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes = [done[id(child)] for child in _children(node)]
            done[key] = (1 + sum(s for s, _ in sizes), 1 + max((h for _, h in sizes), default=0))
            if done[key][1] > MAX_DEPTH + 1:  # a height counts the root, a depth does not
                raise yaml.YAMLError(f"nesting deeper than {MAX_DEPTH} levels once aliases are expanded")
            continue
        if key in done:
            continue
        if key in open_nodes:
            raise yaml.YAMLError("an alias refers to a node that contains it (a recursive document)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    if done[id(root)][0] - distinct > MAX_ALIAS_EXPANSION:
        raise yaml.YAMLError(f"aliases expand to more than {MAX_ALIAS_EXPANSION} extra nodes (a YAML bomb?)")


def is_blank(document: Document) -> bool:
    """True for a chunk that holds only a marker, comments and whitespace."""
    for line in document.raw.splitlines():
        text = line.strip()
        if _MARKER.match(text):
            text = text[3:].strip()
        if text and not text.startswith(b"#") and text != b"...":
            return False
    return True
