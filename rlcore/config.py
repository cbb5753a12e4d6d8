"""Typed agent configs: build from keyword arguments, validate, describe.

Each agent's config is a dataclass whose fields carry a one-line docstring (the string
literal under the field, as in PEP 257 attribute docstrings); `field_docs` reads them so
the CLI help and `rl list` need no second copy.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import textwrap
from typing import Any, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A hyperparameter name or value that cannot be used."""


def build_config(cls: type[C], overrides: dict[str, Any], presets: dict[str, Any] | None = None) -> C:
    """`cls(**presets, **overrides)`; unknown names fail and list the valid ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    for source in (presets or {}, overrides):
        unknown = [k for k in source if k not in names]
        if unknown:
            close = {k: difflib.get_close_matches(k, names, n=1) for k in unknown}
            hints = "; ".join(f"'{k}'" + (f" (did you mean '{m[0]}'?)" if m else "") for k, m in close.items())
            raise ConfigError(f"Unknown hyperparameter {hints} for {cls.__name__}. Valid names: {', '.join(names)}.")
    return cls(**{**(presets or {}), **overrides})


def check(config: object, name: str, ok: bool, constraint: str) -> None:
    """Raise a ConfigError naming the field, its value and the constraint it breaks."""
    if not ok:
        raise ConfigError(f"{type(config).__name__}.{name} = {getattr(config, name)!r} is invalid: must be {constraint}.")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs
