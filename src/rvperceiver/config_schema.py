"""The one config schema: every config is a dataclass, and its type hints are the schema.

Three things used to check configs, each in its own way: the training config's loader, the model configs'
``__post_init__`` (``isinstance`` checks written field by field) and the view config's. This module is the
shared part, so each config class keeps only what is its own (ranges, choices, cross-field rules):

* :func:`check_fields` is the first line of every config's ``__post_init__``: each field's value must fit the
  field's type hint, whether the config came from a YAML file, a checkpoint's JSON or Python code. It also puts
  values in canonical form (an int given for a float becomes a float, a list for a tuple becomes a tuple), so a
  config compares equal after a JSON round trip.
* :func:`build` turns plain data (YAML, JSON) into a config tree. An unknown key fails with the nearest known
  key, looked for in its own section first and then in every section; a wrong type names the dotted key, what
  was expected and what came.
* :func:`require` and :func:`require_choice` write the range and choice messages in one form:
  ``<key> must be <expected>, got <value>``.
* :func:`to_plain` is the inverse of :func:`build`: JSON/YAML-ready data (tuples become lists).

Supported field types: ``int``, ``float``, ``str``, ``bool``, ``X | None`` and other unions, ``tuple[X, ...]``,
``tuple[X, Y]``, ``list[X]``, ``dict[K, V]``, ``Literal[...]``, ``Any`` and nested config dataclasses.

Why not a parsing library (draccus, measured against the same bad inputs): it checks types but no ranges, so the
``__post_init__`` checks stay either way; an unknown key is argparse's "unrecognized arguments" with no nearest
key and no file named; a duplicate YAML key silently keeps the last value; and overrides would become
``--a.b=c``. The code it would replace is this module's converter, about 200 lines.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

from rvperceiver.errors import ConfigError

T = TypeVar("T")


class _Mismatch(Exception):
    """Internal: a value does not fit a type hint (the caller turns it into a message naming the key)."""


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hint of every field of dataclass ``cls`` (cached: ``__post_init__`` asks on every call)."""
    return typing.get_type_hints(cls)


def describe(hint: Any) -> str:
    """A type hint in words, for error messages (``int | None`` -> "an integer or null")."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return f"one of {list(typing.get_args(hint))}"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {describe(args[0])}"
        return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
    if origin is list:
        return f"a list of {describe(typing.get_args(hint)[0])}"
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        return f"a mapping of {describe(key_hint)} to {describe(value_hint)}"
    if hint is Any:
        return "any value"
    if dataclasses.is_dataclass(hint):
        return f"a {hint.__name__}"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _near_miss(value: Any, choices: Sequence[Any]) -> str:
    """' (did you mean 'centre'?)' when a string is close to one of ``choices``, else ''.

    The cutoff keeps typos ('cnm' for 'cnn', 'center' for 'centre') and drops mere look-alikes ('voxel' is
    no misspelt 'pixel').
    """
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.65)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _mismatch_message(key: str, hint: Any, value: Any) -> str:
    near = _near_miss(value, typing.get_args(hint)) if typing.get_origin(hint) is Literal else ""
    return f"{key} must be {describe(hint)}, got {value!r} ({type(value).__name__}){near}"


def _coerce(hint: Any, value: Any, key: str, nested: Any) -> Any:
    """``value`` in canonical form if it fits ``hint``, else :class:`_Mismatch`.

    ``nested(cls, value, key)`` decides what a nested dataclass field accepts: :func:`build` passes one that
    builds sections from mappings, :func:`check_fields` one that accepts instances only.
    """
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if dataclasses.is_dataclass(hint):
        return nested(hint, value, key)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key, nested)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        return _coerce_sequence(origin, typing.get_args(hint), value, key, nested)
    if origin is dict:  # a free-form section (e.g. overrides checked by the config they override)
        key_hint, value_hint = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise _Mismatch
        return {_coerce(key_hint, k, key, nested): _coerce(value_hint, v, f"{key}.{k}", nested) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:  # bool is a subclass of int, but `steps: true` is a mistake, not a 1
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise ConfigError(f"{key}: unsupported field type {hint!r} in the config schema")


def _coerce_sequence(origin: Any, args: tuple[Any, ...], value: Any, key: str, nested: Any) -> Any:
    """A list or tuple field: YAML and JSON give lists; a tuple field stores a tuple (hashable, equal after JSON)."""
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    if origin is list:
        return [_coerce(args[0], v, f"{key}[{i}]", nested) for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(args[0], v, f"{key}[{i}]", nested) for i, v in enumerate(value))
    if len(value) != len(args):
        raise _Mismatch
    return tuple(_coerce(a, v, f"{key}[{i}]", nested) for i, (a, v) in enumerate(zip(args, value)))


def _instance_only(cls: type, value: Any, key: str) -> Any:
    if isinstance(value, cls):
        return value
    raise _Mismatch


def check_fields(config: Any, owner: str, error: type[Exception] = ConfigError) -> None:
    """Check every field of ``config`` against its type hint and store it in canonical form.

    Called first in each config's ``__post_init__``, so the range checks after it can compare numbers without
    guarding against strings or bools, and a config built in Python is held to the same schema as one read from a
    file. ``owner`` prefixes the field name in messages (``"data"`` -> ``data.t_obs``; ``""`` for the top level);
    ``error`` is the exception the config's package raises for bad values.
    """
    prefix = f"{owner}." if owner else ""
    hints = field_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        try:
            canonical = _coerce(hints[f.name], value, prefix + f.name, _instance_only)
        except _Mismatch:
            raise error(_mismatch_message(prefix + f.name, hints[f.name], value)) from None
        if canonical is not value:
            object.__setattr__(config, f.name, canonical)


def require(condition: bool, key: str, expected: str, value: Any, error: type[Exception] = ConfigError) -> None:
    """A domain check (range, non-empty, ...) in the common form ``<key> must be <expected>, got <value>``."""
    if not condition:
        raise error(f"{key} must be {expected}, got {value!r}")


def require_choice(key: str, value: Any, choices: Sequence[str], error: type[Exception] = ConfigError) -> None:
    """``value`` must be one of ``choices``; a near miss ('center' for 'centre') is named in the message."""
    if value not in choices:
        raise error(f"{key} must be one of {list(choices)}, got {value!r}{_near_miss(value, choices)}")


# ----------------------------------------------------------------------------------------------------------------
# Plain data -> config tree, and back
# ----------------------------------------------------------------------------------------------------------------


def known_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of a dataclass tree (sections and fields), for 'did you mean' across sections."""
    paths: list[str] = []
    hints = field_hints(cls)
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        paths.append(path)
        if dataclasses.is_dataclass(hints[f.name]):
            paths.extend(known_keys(hints[f.name], path + "."))
    return paths


def _unknown_key_message(cls: type, key: str, path: str, root: type, root_path: str) -> str:
    """Suggest the nearest key of the same section; else the same name (or a near one) in any section."""
    known = [f.name for f in dataclasses.fields(cls)]
    here = f"{path}." if path else ""
    full = here + key
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {here + close[0]}?"
    else:
        # The key may exist in another section (e.g. `lr` at the top level instead of `optim.lr`).
        everywhere = known_keys(root, f"{root_path}." if root_path else "")
        elsewhere = [p for p in everywhere if p.rsplit(".", 1)[-1] == key]
        elsewhere = elsewhere or difflib.get_close_matches(full, everywhere, n=1, cutoff=0.6)
        hint = f"did you mean {elsewhere[0]}?" if elsewhere else f"known keys here: {', '.join(known)}"
    return f"unknown key {full!r}: {hint}"


def build(cls: type[T], data: Any, path: str = "") -> T:
    """A validated ``cls`` from plain data (the inverse of :func:`to_plain`); a missing key takes its default.

    ``path`` is the dotted name of ``data`` in messages ("" for a file's top level, ``"view"`` for a section read
    on its own). Errors are :class:`ConfigError`: unknown key (with the nearest known one), wrong type (key,
    expected, got), or whatever the dataclasses' own ``__post_init__`` checks raise.
    """

    def section(sub: type, raw: Any, key: str) -> Any:
        if isinstance(raw, sub):
            raw = to_plain(raw)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{key or 'the config'} must be a mapping (section {sub.__name__}), got {raw!r}")
        hints = field_hints(sub)
        names = {f.name for f in dataclasses.fields(sub)}
        kwargs: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in names:
                raise ConfigError(_unknown_key_message(sub, str(name), key, cls, path))
            full = f"{key}.{name}" if key else str(name)
            try:
                kwargs[name] = _coerce(hints[name], value, full, section)
            except _Mismatch:
                raise ConfigError(_mismatch_message(full, hints[name], value)) from None
        try:
            return sub(**kwargs)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:  # e.g. the view's InputError: in a config it is a config error
            raise ConfigError(f"{key or sub.__name__}: {error}") from error

    return section(cls, data, path)


def to_plain(config: Any) -> Any:
    """JSON/YAML-ready data of a config dataclass tree (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_plain(v) for v in config]
    if isinstance(config, dict):
        return {k: to_plain(v) for k, v in config.items()}
    return config
