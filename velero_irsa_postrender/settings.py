"""Effective settings: flag > VELERO_IRSA_* variable > config file > default, checked by schema.

Flags and their environment twins are merged by the CLI layer (click reads both); this module
adds the config file beneath them, validates the result against ``schemas/config.schema.json``
and hands the rest of the program one frozen ``Settings``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from velero_irsa_postrender.errors import ConfigError
from velero_irsa_postrender.stream import load_text

CONFIG_ENV = "VELERO_IRSA_CONFIG"
ENV_PREFIX = "VELERO_IRSA_"

DEFAULTS: dict[str, Any] = {
    "create": True,
    "create-bucket": False,
    "create-oidc-provider": False,
    "adopt": False,
    "dry-run": False,
    "role-path": "/",
    "mode": "irsa",
    "output": "text",
}
_LISTS = ("cluster", "bucket", "kms-key-arn", "oidc-issuer")


def envvar(key: str) -> str:
    """The environment twin of a setting: ``role-name`` → ``VELERO_IRSA_ROLE_NAME``."""
    return ENV_PREFIX + key.upper().replace("-", "_")


@dataclass(frozen=True)
class Settings:
    clusters: tuple[str, ...] = ()
    namespace: str | None = None
    service_account: str | None = None
    buckets: tuple[str, ...] = ()
    bucket_prefix: str | None = None
    region: str | None = None
    profile: str | None = None
    role_name: str | None = None
    policy_name: str | None = None
    role_arn: str | None = None
    role_path: str = "/"
    account_id: str | None = None
    oidc_issuers: tuple[str, ...] = ()
    create: bool = True
    create_bucket: bool = False
    create_oidc_provider: bool = False
    adopt: bool = False
    dry_run: bool = False
    permissions_boundary: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    max_session_duration: int | None = None
    kms_key_arns: tuple[str, ...] = ()
    mode: str = "irsa"
    output: str = "text"
    log_file: str | None = None

    @property
    def cluster(self) -> str | None:
        return self.clusters[0] if self.clusters else None

    @property
    def oidc_issuer(self) -> str | None:
        return self.oidc_issuers[0] if self.oidc_issuers else None


_FIELD_FOR_KEY = {
    "cluster": "clusters",
    "bucket": "buckets",
    "kms-key-arn": "kms_key_arns",
    "tag": "tags",
    "oidc-issuer": "oidc_issuers",
}


def resolve(cli: dict[str, Any], config_path: str | None = None) -> Settings:
    """Merge the CLI values (flags, already merged with their env twins) over the config file."""
    path = config_path or os.environ.get(CONFIG_ENV) or None
    from_file = load_config(Path(path)) if path else {}
    merged = dict(DEFAULTS)
    merged.update(from_file)
    merged.update({key: _plain(value) for key, value in cli.items() if _given(value)})
    validate(merged, "settings")

    values = {}
    for key, value in merged.items():
        if key in _LISTS:
            value = tuple([value] if isinstance(value, str) else value)
        values[_FIELD_FOR_KEY.get(key, key.replace("-", "_"))] = value
    return Settings(**values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _given(value: Any) -> bool:
    return value is not None and value != () and value != [] and value != {}


def load_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise ConfigError(
            f"cannot read config file {path} ({error.strerror})", f"check the path given with --config or {CONFIG_ENV}"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start})", "save it as UTF-8") from None
    try:
        # The manifests' loader: its alias and nesting limits keep a YAML bomb in a config file small too.
        documents = load_text(text)
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise ConfigError(f"config file {path} is not valid YAML ({reason})", "fix its syntax") from None
    if len(documents) > 1:
        raise ConfigError(f"config file {path} holds {len(documents)} YAML documents", "keep one mapping of settings")
    data = documents[0] if documents else None
    if data is None:
        return {}
    validate(data, f"config file {path}")
    return data


@cache
def _schema(name: str) -> dict[str, Any]:
    try:
        text = resources.files("velero_irsa_postrender.schemas").joinpath(name).read_text(encoding="utf-8")
    except ModuleNotFoundError:  # running from a source checkout: schemas/ sits beside the package
        text = (Path(__file__).resolve().parent.parent / "schemas" / name).read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator(name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (f"velero-irsa/{other}", Resource.from_contents(_schema(other)))
        for other in ("config.schema.json", "role-arn.schema.json")
    )
    return Draft202012Validator(_schema(name), registry=registry)


def validate(data: Any, where: str, schema: str = "config.schema.json") -> None:
    """Raise a ConfigError naming the key path and the rule for the first schema violation."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(schema).iter_errors(data))
    if error is None:
        return
    key = ".".join(str(part) for part in error.absolute_path) or "(top level)"
    message = error.message
    if error.validator in ("pattern", "not") and isinstance(error.schema, dict) and error.schema.get("description"):
        message = f"{error.instance!r} is not {error.schema['description']}"  # words, not a regex
    raise ConfigError(
        f"{where}: {key}: {_short(message)} (schema rule: {error.validator})", _hint_for(key.split(".")[0])
    )


def _short(message: str, limit: int = 200) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _hint_for(key: str) -> str:
    if key in _schema("config.schema.json")["properties"]:
        return f"fix --{key}, {envvar(key)} or the `{key}` key in the config file"
    return "see schemas/config.schema.json for the allowed keys and values"


def validate_role_arn(arn: str) -> None:
    validate(arn, "role ARN", schema="role-arn.schema.json")
