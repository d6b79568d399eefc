"""Set (or remove) one annotation on one ServiceAccount document, leaving every other byte alone.

The edit is made on the text, so comments, quoting and key order survive. The result is parsed
again and compared with the intended object; if the text edit cannot be proven right (flow
style, odd indentation), the document is re-serialised instead, keeping its leading comments.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import yaml

from velero_irsa_postrender.stream import Document, load

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"

_TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_\"'][^:#]*?)\s*:(?:\s|$)")


def current_annotation(body: dict[str, Any], key: str = ROLE_ARN_ANNOTATION) -> str | None:
    annotations = (body.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and key in annotations:
        return str(annotations[key])
    return None


def set_annotation(
    document: Document, body: dict[str, Any], value: str | None, key: str = ROLE_ARN_ANNOTATION
) -> bytes:
    """The document's new bytes with ``key`` set to ``value`` (or removed when value is None)."""
    expected = _expected(document, body, key, value)
    text = document.raw.decode("utf-8-sig")
    bom = "\ufeff" if document.raw.startswith(b"\xef\xbb\xbf") else ""
    newline = "\r\n" if "\r\n" in text else "\n"

    edited = _edit_text(text.replace("\r\n", "\n"), key, value)
    if edited is not None:
        candidate = (bom + edited.replace("\n", newline)).encode("utf-8")
        if _parses_to(candidate, expected):
            return candidate
    return _reserialise(text, expected, newline, bom)


def _expected(document: Document, body: dict[str, Any], key: str, value: str | None) -> list[Any]:
    """What the whole chunk should parse to after the change."""
    bodies = copy.deepcopy(document.parsed)
    for candidate in _walk(bodies):
        if candidate == body:
            metadata = candidate.setdefault("metadata", {})
            annotations = metadata.get("annotations") if isinstance(metadata.get("annotations"), dict) else {}
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
            if annotations or value is not None:
                metadata["annotations"] = annotations
            break
    return bodies


def _walk(bodies: list[Any]):
    for body in bodies:
        if isinstance(body, dict):
            yield body
            items = body.get("items")
            if isinstance(items, list):
                yield from (item for item in items if isinstance(item, dict))


def _parses_to(raw: bytes, expected: list[Any]) -> bool:
    try:
        return load(raw, "the edited ServiceAccount") == expected
    except Exception:
        return False


def _edit_text(text: str, key: str, value: str | None) -> str | None:
    """Edit block-style YAML in place; None when the layout is not the simple block form."""
    lines = text.split("\n")
    metadata = _find_key(lines, "metadata", 0, len(lines), indent=0)
    if metadata is None:
        return None
    meta_end = _block_end(lines, metadata, 0)
    child = _child_indent(lines, metadata, meta_end)
    if child is None:
        return None

    annotations = _find_key(lines, "annotations", metadata + 1, meta_end, indent=child)
    entry = f"{_quote_key(key)}: {json.dumps(value)}" if value is not None else None
    if annotations is None:
        if entry is None:
            return text
        after = _last_content_line(lines, metadata, meta_end) + 1
        lines[after:after] = [f"{' ' * child}annotations:", f"{' ' * (child * 2)}{entry}"]
        return "\n".join(lines)

    rest = lines[annotations].split(":", 1)[1].strip()
    ann_end = _block_end(lines, annotations, child)
    if rest and not rest.startswith("#"):
        if rest not in ("{}", "null", "~") or entry is None:
            return None
        lines[annotations] = f"{' ' * child}annotations:"
        lines.insert(annotations + 1, f"{' ' * (child * 2)}{entry}")
        return "\n".join(lines)

    inner = _child_indent(lines, annotations, ann_end) or child * 2
    existing = _find_annotation(lines, key, annotations + 1, ann_end, inner)
    if existing is not None:
        # A multi-line value would leave continuation lines behind; the re-parse catches that.
        if entry is None:
            del lines[existing]
            if _child_indent(lines, annotations, _block_end(lines, annotations, child)) is None:
                lines[annotations] = f"{' ' * child}annotations: {{}}"
        else:
            lines[existing] = f"{' ' * inner}{entry}"
        return "\n".join(lines)
    if entry is None:
        return text
    last = _last_content_line(lines, annotations, ann_end)
    lines.insert(last + 1, f"{' ' * inner}{entry}")
    return "\n".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _find_key(lines: list[str], key: str, start: int, end: int, indent: int) -> int | None:
    for number in range(start, end):
        line = lines[number]
        if not _is_content(line) or _indent(line) != indent:
            continue
        match = _TOP_KEY.match(line[indent:])
        if match and match.group("key").strip("\"'") == key:
            return number
    return None


def _find_annotation(lines: list[str], key: str, start: int, end: int, indent: int) -> int | None:
    for number in range(start, end):
        line = lines[number]
        if _is_content(line) and _indent(line) == indent:
            name = line[indent:].split(": ", 1)[0].rstrip(":").strip().strip("\"'")
            if name == key:
                return number
    return None


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """First line after ``start`` whose content is indented at ``indent`` or less."""
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if _is_content(line) and (_indent(line) <= indent or line.strip() == "..."):
            return number
    return len(lines)


def _child_indent(lines: list[str], start: int, end: int) -> int | None:
    for number in range(start + 1, end):
        if _is_content(lines[number]):
            indent = _indent(lines[number])
            return indent if indent > _indent(lines[start]) else None
    return None


def _last_content_line(lines: list[str], start: int, end: int) -> int:
    last = start
    for number in range(start + 1, end):
        if _is_content(lines[number]):
            last = number
    return last


def _quote_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9./_-]+", key) else json.dumps(key)


def _reserialise(text: str, expected: list[Any], newline: str, bom: str) -> bytes:
    """Fallback: keep the chunk's leading marker and comments, dump the bodies again."""
    head = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("---") and line[3:4] in ("", " ", "\t"):
            # The marker must survive even when content shares its line (`--- {kind: …}`), or this
            # document would run into the one before it.
            inline = line[3:].strip()
            head.append("---" if inline and not inline.startswith("#") else line)
            if inline and not inline.startswith("#"):
                break
            continue
        if line.startswith("#") or not line.strip():
            head.append(line)
            continue
        break
    dumped = "---\n".join(
        yaml.safe_dump(body, default_flow_style=False, sort_keys=False, allow_unicode=True, width=10**6)
        for body in expected
    )
    out = "\n".join(head) + ("\n" if head else "") + dumped
    return (bom + out.replace("\n", newline)).encode("utf-8")
