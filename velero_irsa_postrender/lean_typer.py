"""Keep typer's start-up cost off the post-render hot path, which Helm runs on every render.

typer builds every command of an app, with all their options, before it runs one; ``LeanTyper``
builds only the command named first on the command line (help and completion still see them all).

typer (0.29) also coerces each option through a pydantic TypeAdapter, and builds that adapter for every
option of a command whether it was given or not. For ``--post-renderer velero-irsa
--post-renderer-args=--role-arn=…``, which Helm runs on every render, that is about 50 ms of
pydantic import and schema building: more than all of our own work. An option that was not given
has nothing to coerce, and a string option given a string is already what typer would return, so
those two cases are answered here; anything else is still handed to typer's own coercion.

If a typer release renames the attributes this relies on, the options are left untouched: only
speed is lost (tests/test_bench.py notices, because it checks that pydantic stays unloaded).
"""

from __future__ import annotations

from typing import Any

import typer.core

# TODO(typer builds every command and a pydantic adapter per option, given or not): drop this
# module once typer builds both lazily.


class LeanTyper(typer.Typer):
    """A Typer app that, asked to run one of its commands, builds only that one."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = kwargs.get("args") or []
        chosen = [info for info in self.registered_commands if argv and info.name == argv[0]]
        if not chosen:
            return super().__call__(*args, **kwargs)
        everything = self.registered_commands
        self.registered_commands = chosen
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self.registered_commands = everything


class _Lazy:
    """typer's coercion, with the adapter built only for a value that really needs it."""

    def __init__(self, param: Any) -> None:
        self._param = param
        self._real: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        many = param.multiple or param.nargs == -1
        if value is None:
            return () if many else None
        descriptor = param.type_descriptor
        plain = descriptor.parameter_info.parser is None and descriptor.file_annotation is None
        if plain and descriptor.annotation is str and isinstance(value, str):
            return value
        strings = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
        if plain and descriptor.annotation == list[str] and strings:
            return list(value)
        if self._real is None:
            from typer._coercion import build_runtime_param

            self._real = build_runtime_param(descriptor)
        return self._real.coerce(value, param=param, ctx=ctx)


def _understood(param: Any) -> bool:
    """True when the option has every attribute _Lazy reads (typer 0.29's layout); else typer decides."""
    descriptor = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    return (
        getattr(param, "_runtime_param", False) is None
        and all(hasattr(descriptor, name) for name in ("annotation", "file_annotation"))
        and hasattr(info, "parser")
    )


def _make_lazy(command: Any, ctx: Any) -> None:
    # get_params adds the help option, which typer creates (and would coerce) on first use.
    for param in command.get_params(ctx) if command is not None else ():
        if _understood(param):
            param._runtime_param = _Lazy(param)


class LeanGroup(typer.core.TyperGroup):
    """A TyperGroup whose own options and whose commands' options coerce lazily."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _make_lazy(self, ctx)
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        _make_lazy(command, ctx)
        return command
