"""Split a manifest stream into documents without changing a byte, and parse only candidates.

Helm hands a post-renderer one YAML stream. Everything we do not change must come back byte
for byte, so the stream is cut at document markers (a line starting with ``---``) into chunks,
and only chunks that can be one of the kinds we look for are parsed at all.

A chunk is a view into the stream, never a copy: a 100 MB render costs 100 MB of memory plus
the parsed candidates, and the output is written as slices of the input. Which chunks are
candidates is decided by byte searches over the whole stream (C speed), never by a YAML parse.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from velero_irsa_postrender.errors import ManifestError

_MARKER = re.compile(rb"^---(?=[ \t\r\n]|$)", re.MULTILINE)
# The same markers after the first line; a literal first byte lets the regex engine search fast.
_NEXT_MARKER = re.compile(rb"\n---(?=[ \t\r\n]|\Z)")

# Kinds worth parsing. A document of one of these kinds spells the kind in its text, and so does
# a ``kind: List`` wrapper around one (its items say their kinds). YAML can hide a word only
# in a double-quoted scalar, behind an escape that yields a letter (\x, \u, \U) or an escaped
# line break that joins two halves (backslash + LF, CR, NEL, LS or PS); any of those, or a NUL
# (a UTF-16/32 stream, which must fail to parse rather than pass unseen), makes a chunk
# "escaped": a candidate for every question. Other escapes (\" \n \t …) cannot make a letter.
KINDS = (b"Deployment", b"ServiceAccount", b"BackupStorageLocation")
ESCAPED = b"\\"
_ESCAPES = re.compile(rb"\\(?:[xuU\r\n]|\xc2\x85|\xe2\x80[\xa8\xa9])")
_NOTHING: frozenset[bytes] = frozenset()

# Alias expansion is where YAML bombs live; real manifests use a handful of aliases at most.
MAX_ALIASES = 100
MAX_DEPTH = 100
# Nodes that aliases may add once expanded: a hundred aliases of aliases still stand for billions.
MAX_ALIAS_EXPANSION = 50_000

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Document:
    """One chunk of the stream: a view of its bytes, which scan words it holds, its parsed bodies.

    A plain class rather than a dataclass: building a dataclass costs start-up time on every render.
    """

    __slots__ = ("end", "hits", "parsed", "start", "stream")

    def __init__(
        self,
        stream: bytes,
        start: int,
        end: int,
        hits: frozenset[bytes] = _NOTHING,
        parsed: list[Any] | None = None,
    ) -> None:
        self.stream = stream  # the whole stream, shared by every chunk (not a copy)
        self.start, self.end = start, end
        self.hits = hits  # the KINDS words and ESCAPED found in the chunk
        self.parsed = parsed  # None until parsed

    def __repr__(self) -> str:
        return f"Document(line {self.line}, {self.end - self.start} bytes, hits={sorted(self.hits)})"

    @property
    def view(self) -> memoryview:
        """The chunk's bytes without copying them."""
        return memoryview(self.stream)[self.start : self.end]

    @property
    def raw(self) -> bytes:
        """A copy of the chunk's bytes."""
        return self.stream[self.start : self.end]

    @property
    def line(self) -> int:
        """The line the chunk starts on, counted only when an error needs it."""
        return self.stream.count(b"\n", 0, self.start) + 1

    @property
    def candidate(self) -> bool:
        return bool(self.hits)

    def mentions(self, word: bytes | Scalar) -> bool:
        if isinstance(word, Scalar):
            return word.found_in(self.stream, self.start, self.end)
        return self.stream.find(word, self.start, self.end) >= 0

    def may_hold(self, kinds: Iterable[bytes], also: Iterable[bytes | Scalar] = ()) -> bool:
        """Whether a full parse could find one of ``kinds`` here whose text has every word of ``also``.

        A kind is a whole scalar (``kind: ServiceAccount``), so ``automountServiceAccountToken``
        does not count.
        """
        if ESCAPED in self.hits:
            return True
        if not any(kind in self.hits and self.mentions(Scalar(kind)) for kind in kinds):
            return False
        return all(self.mentions(word) for word in also)

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Kubernetes objects in this chunk, with the items of a ``kind: List`` unwrapped."""
        found: list[dict[str, Any]] = []
        for body in self.parsed or ():
            if not isinstance(body, dict):
                continue
            found.append(body)
            items = body.get("items")
            if str(body.get("kind", "")).endswith("List") and isinstance(items, list):
                found.extend(item for item in items if isinstance(item, dict))
        return found


def split(stream: bytes) -> list[Document]:
    """Cut the stream at document markers; the chunks' views, in order, give it back exactly."""
    starts = _marker_offsets(stream)
    ends = [*starts[1:], len(stream)]
    hits = _scan(stream, starts, ends)
    chunks = zip(starts, ends, hits, strict=True)
    return [Document(stream, start, end, found) for start, end, found in chunks if end > start]


def _marker_offsets(stream: bytes) -> list[int]:
    """Where each chunk starts: 0, then every line that is ``---`` alone or followed by a blank."""
    # TODO(YAML directives): a ``%TAG`` line before a marker stays with the chunk above it, so a
    # candidate using that tag handle fails to parse (an error, never a silent miss). Helm emits no
    # directives; carry them over to the next chunk if a chart ever does.
    return [0, *(match.start() + 1 for match in _NEXT_MARKER.finditer(stream))]


def _scan(stream: bytes, starts: list[int], ends: list[int]) -> list[frozenset[bytes]]:
    """For each chunk, the scan words it contains: one C-speed search per word over the stream.

    After a hit the search resumes at the end of that chunk, so a word repeated in a chunk
    costs nothing more.
    """
    found: list[frozenset[bytes]] = [_NOTHING] * len(starts)
    searches: list[tuple[bytes, Callable[[int], int]]] = [
        (word, lambda position, word=word: stream.find(word, position)) for word in (*KINDS, b"\x00")
    ]
    searches.append((ESCAPED, lambda position: _first(_ESCAPES.search(stream, position))))
    for word, search in searches:
        position = search(0)
        while position >= 0:
            chunk = bisect.bisect_right(starts, position) - 1
            found[chunk] = found[chunk] | {ESCAPED if word == b"\x00" else word}
            position = search(ends[chunk])
    return found


def _first(match: re.Match[bytes] | None) -> int:
    return match.start() if match else -1


class Scalar:
    """A word as a whole scalar, not a piece of a longer plain word such as a path or a name.

    Unescaped, a scalar's text is bounded by indicators, quotes or blanks, never by a letter,
    digit, ``_``, ``.``, ``/`` or ``-`` (``- x`` needs its space; ``-x`` is the scalar "-x").
    """

    __slots__ = ("word",)

    def __init__(self, word: str | bytes) -> None:
        self.word = word.encode() if isinstance(word, str) else word

    def found_in(self, stream: bytes, start: int, end: int) -> bool:
        word = self.word
        position = stream.find(word, start, end)
        while position >= 0:
            after = position + len(word)
            if stream[position - 1 : position] not in _WORD_BYTES and stream[after : after + 1] not in _WORD_BYTES:
                return True
            position = stream.find(word, position + 1, end)
        return False


_WORD_BYTES = frozenset(bytes([byte]) for byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-")


def parse_candidates(
    documents: list[Document], kinds: Iterable[bytes] = KINDS, also: Iterable[bytes | Scalar] = ()
) -> None:
    """Parse every chunk not parsed yet that may hold one of ``kinds`` (see ``Document.may_hold``).

    A chunk that is not valid YAML is an error naming its line.
    """
    kinds, also = tuple(kinds), tuple(also)
    for document in documents:
        if document.parsed is None and document.may_hold(kinds, also):
            # Counting lines is a pass over the stream up to the chunk: done only for an error.
            document.parsed = load(document.view, lambda document=document: f"the document at line {document.line}")


def load(raw: bytes | memoryview, where: str | Callable[[], str]) -> list[Any]:
    """Parse one chunk with alias and nesting limits, so hostile input fails fast and small."""
    try:
        text = str(raw, "utf-8-sig")
    except UnicodeDecodeError as error:
        where = where() if callable(where) else where
        raise ManifestError(
            f"{where} is not UTF-8 text (byte {error.start})",
            "Helm renders UTF-8; check the chart's templates and values",
        ) from None
    try:
        return _compose_all(text)
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        where = where() if callable(where) else where
        raise ManifestError(
            f"{where} is not valid YAML ({reason})", "fix the template or values that rendered it"
        ) from None
    except RecursionError:
        where = where() if callable(where) else where
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


def pieces(
    documents: list[Document], replaced: Document | None = None, replacement: bytes = b""
) -> list[bytes | memoryview]:
    """The stream ``documents`` were split from, as views (no copy), with one chunk's bytes replaced."""
    if not documents:
        return []
    whole = memoryview(documents[0].stream)
    if replaced is None:
        return [whole]
    return [whole[: replaced.start], replacement, whole[replaced.end :]]


def is_blank(document: Document) -> bool:
    """True for a chunk that holds only a marker, comments and whitespace."""
    for line in document.raw.splitlines():
        text = line.strip()
        if _MARKER.match(text):
            text = text[3:].strip()
        if text and not text.startswith(b"#") and text != b"...":
            return False
    return True
