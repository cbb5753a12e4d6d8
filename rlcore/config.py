"""Typed configs: built from flat keyword arguments, validated, described.

A config is a dataclass whose fields carry a one-line docstring (the string literal under the
field, as in PEP 257 attribute docstrings); `field_docs` reads them, so the CLI's help and
`rl list` need no second copy.

Configs compose: a field whose type is itself a config dataclass (or that or None) is a *part*,
e.g. `PPOConfig.kl: KLConfig | None`. Users still write flat names, `<part>_<field>` (`kl_coef`,
the CLI's `--kl-coef`); `flat_fields` lists them and `build_config` routes them into the part.
Settings that belong to something other than the agent's config (a text environment, a language-
model policy) are separate configs; `split_settings` sends each flat name to the one that owns it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import math
import textwrap
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C")


class ConfigError(ValueError):
    """A hyperparameter name or value that cannot be used."""


def part_class(hint: Any) -> type | None:
    """The config dataclass a field's type names (`KLConfig` for `KLConfig | None`), else None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else None


@functools.cache
def parts(cls: type) -> dict[str, type]:
    """The parts of config `cls`: field name -> its config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: p for f in dataclasses.fields(cls) if (p := part_class(hints[f.name])) is not None}


@functools.cache
def flat_fields(cls: type) -> dict[str, tuple[type, str]]:
    """Every setting of `cls` as the flat name users write -> (the dataclass that declares it, its field name)."""
    out: dict[str, tuple[type, str]] = {}
    for f in dataclasses.fields(cls):
        part = parts(cls).get(f.name)
        if part is None:
            out[f.name] = (cls, f.name)
        else:
            out.update({f"{f.name}_{name}": owner for name, owner in flat_fields(part).items()})
    return out


def _unknown(names: list[str], valid: list[str], where: str) -> ConfigError:
    close = {k: difflib.get_close_matches(k, valid, n=1) for k in names}
    hints = "; ".join(f"'{k}'" + (f" (did you mean '{m[0]}'?)" if m else "") for k, m in close.items())
    return ConfigError(f"Unknown hyperparameter {hints} for {where}. Valid names: {', '.join(valid)}.")


def build_config(cls: type[C], overrides: dict[str, Any], presets: dict[str, Any] | None = None) -> C:
    """`cls` from flat names (`presets`, then `overrides` over them); unknown names fail and list the
    valid ones. A part may also be given whole, as its dataclass or a dict (`kl={"coef": 0.1}`), and
    a flat name of a part that defaults to None brings the part in with its defaults."""
    valid = list(flat_fields(cls))
    own = {f.name for f in dataclasses.fields(cls)} - set(parts(cls))
    merged: dict[str, Any] = {}
    for source in (presets or {}, overrides):
        unknown = [k for k in source if k not in valid and k not in parts(cls)]
        if unknown:
            raise _unknown(unknown, valid, cls.__name__)
        for key, value in source.items():
            if key in parts(cls):  # a whole part replaces what flat names said of it so far
                merged = {k: v for k, v in merged.items() if k in own or not k.startswith(key + "_")}
            merged[key] = value
    kwargs = {k: v for k, v in merged.items() if k in own}
    for key, value in kwargs.items():  # what no range check below should have to think of
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{cls.__name__}.{key} = {value!r} is invalid: must be a finite number.")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            raise ConfigError(f"{cls.__name__}.{key} = {value} is invalid: far beyond any usable value.")
    for name, part in parts(cls).items():
        given = merged.get(name)
        flat = {k[len(name) + 1:]: v for k, v in merged.items() if k not in own and k.startswith(name + "_")}
        if given is None and not flat:
            if name in merged:  # given as None: the part is off
                kwargs[name] = None
            continue
        base = dataclasses.asdict(given) if dataclasses.is_dataclass(given) else dict(given or {})
        kwargs[name] = build_config(part, {**base, **flat})
    return cls(**kwargs)


def flatten(config: Any) -> dict[str, Any]:
    """A config as flat names -> values (a part's fields as `<part>_<field>`; a part that is None, left out):
    what `build_config` takes back, what the CLI's flags and TensorBoard's table show."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in parts(type(config)):
            if value is not None:
                out.update({f"{f.name}_{k}": v for k, v in flatten(value).items()})
        else:
            out[f.name] = value
    return out


def split_settings(groups: dict[str, type], flat: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Send each flat name to the config of `groups` (group name -> config class) that owns it; a
    group's whole parts (`kl=...`) go with it. `where` names the agent and environment in errors."""
    owner = {name: group for group, cls in groups.items() for name in [*flat_fields(cls), *parts(cls)]}
    unknown = [k for k in flat if k not in owner]
    if unknown:
        raise _unknown(unknown, [n for cls in groups.values() for n in flat_fields(cls)], where)
    out: dict[str, dict[str, Any]] = {group: {} for group in groups}
    for key, value in flat.items():
        out[owner[key]][key] = value
    return out


def check(config: object, name: str, ok: bool, constraint: str) -> None:
    """Raise a ConfigError naming the field, its value and the constraint it breaks."""
    if not ok:
        raise ConfigError(f"{type(config).__name__}.{name} = {getattr(config, name)!r} is invalid: must be {constraint}.")


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source (a part's as `<part>_<field>`)."""
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
    for name, part in parts(cls).items():
        docs.update({f"{name}_{k}": v for k, v in field_docs(part).items()})
    return docs
