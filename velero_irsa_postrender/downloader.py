"""Values the Helm-native way: ``helm install … -f 'velero-irsa://prod-eu/velero?bucket=…'``.

Helm runs a downloader (Helm 3) or getter plugin (Helm 4) with the certificate, key and CA file
paths and then the URL; it reads the values file from stdout. The URL names the cluster (host), the
namespace and optionally the ServiceAccount (path); its query parameters are settings keys, with
the same names and rules as the config file. This module only turns the URL into those settings.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from velero_irsa_postrender.errors import ConfigError
from velero_irsa_postrender.settings import _schema as settings_schema

SCHEME = "velero-irsa"
EXAMPLE = f"{SCHEME}://prod-eu/velero?bucket=velero-prod-eu&region=eu-central-1"

# Keys the path carries, and keys that mean nothing for a values file.
_FROM_PATH = ("cluster", "namespace", "service-account")
_NOT_IN_URL = ("output", "log-file", *_FROM_PATH)
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def url_settings(url: str) -> dict[str, Any]:
    """The settings a ``velero-irsa://`` URL asks for, config-file shaped (the schema checks values)."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ConfigError(f"{url!r} is not a {SCHEME}:// URL", f"write it like {EXAMPLE}")
    values = _path_settings(parts.netloc, parts.path, url)
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        _add_query_value(values, key, value)
    return values


def _path_settings(host: str, path: str, url: str) -> dict[str, Any]:
    segments = [unquote(part) for part in path.split("/") if part]
    if not host or len(segments) > 2:
        raise ConfigError(
            f"{url!r} does not read {SCHEME}://<cluster>/<namespace>[/<service-account>]", f"for example {EXAMPLE}"
        )
    values: dict[str, Any] = {"cluster": unquote(host)}
    values.update(zip(("namespace", "service-account"), segments, strict=False))  # the account is optional
    return values


def _add_query_value(values: dict[str, Any], key: str, text: str) -> None:
    kinds = _key_kinds()
    if key not in kinds or key in _NOT_IN_URL:
        allowed = ", ".join(sorted(k for k in kinds if k not in _NOT_IN_URL))
        raise ConfigError(f"{SCHEME}:// URL: unknown parameter {key!r}", f"use one of {allowed}")
    kind = kinds[key]
    if kind == "list":
        values.setdefault(key, []).append(text)
    elif kind == "mapping":
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise ConfigError(f"{SCHEME}:// URL: {key}={text!r} is not KEY=VALUE", f"write it as {key}=team%3Dplatform")
        values.setdefault(key, {})[name] = value
    else:
        values[key] = _scalar(text, kind)


def _scalar(text: str, kind: str) -> Any:
    """Booleans and integers from their text; anything unreadable stays text for the schema to name."""
    if kind == "boolean" and text.lower() in (*_TRUE, *_FALSE, ""):
        return text.lower() in (*_TRUE, "")
    if kind == "integer" and text.strip().isdigit():
        return int(text)
    return text


@cache
def _key_kinds() -> dict[str, str]:
    """Each settings key's shape, read from the schema so that new keys work in URLs at once."""
    return {key: _kind(rule) for key, rule in settings_schema("config.schema.json")["properties"].items()}


def _kind(rule: dict[str, Any]) -> str:
    branches = rule.get("oneOf") or rule.get("anyOf") or [rule]
    types = {branch.get("type") for branch in branches}
    if "array" in types:
        return "list"
    if "object" in types:
        return "mapping"
    return next((kind for kind in ("boolean", "integer") if kind in types), "text")
