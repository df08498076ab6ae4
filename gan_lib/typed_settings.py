"""Typed settings: a settings dataclass's keys and value types checked, and the command
line's ``key=value`` form parsed into them.

:class:`gan_lib.config.TrainConfig` and ``ScoreConfig`` call :func:`check_keys` and
:func:`check_types` so that an unknown or ill-typed setting fails early, naming the key;
:func:`parse_set` reads ``--set key=value`` into values of the field's type and
:func:`format_set` writes them back (the launcher passes a config to torchrun that way).
:func:`check_record` checks a record read from a file (a run's config.json, a row of its
losses.jsonl) against the same types, naming the file, key, value and expected type.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class S:
    ...     n: int = 1
    >>> check_types(S(n="2"))
    Traceback (most recent call last):
    ...
    TypeError: S.n='2': expected int, got str
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any


def parse_set(pairs: list[str], cls: type) -> dict[str, Any]:
    """Parse command-line ``key=value`` overrides into typed values for ``cls``.

    >>> from gan_lib.config import TrainConfig
    >>> parse_set(["iterations=300", "snapshot_at=100,300", "compile=true"], TrainConfig)
    {'iterations': 300, 'snapshot_at': (100, 300), 'compile': True}
    """
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"--set {pair!r}: expected key=value, e.g. --set iterations=300")
        if key not in hints:
            raise ValueError(f"--set {key}: unknown setting; known: {', '.join(sorted(hints))}")
        out[key] = _parse_value(key, raw, hints[key])
    return out


def format_set(values: dict[str, Any]) -> list[str]:
    """``key=value`` strings that :func:`parse_set` reads back as ``values``.

    >>> format_set({"iterations": 300, "snapshot_at": (100, 300), "subset": None})
    ['iterations=300', 'snapshot_at=100,300', 'subset=none']
    >>> from gan_lib.config import TrainConfig
    >>> parse_set(format_set({"snapshot_at": (100, 300), "augment": "translation,cutout"}),
    ...           TrainConfig)
    {'snapshot_at': (100, 300), 'augment': 'translation,cutout'}
    """
    def text(v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, list | tuple):
            return ",".join(map(str, v))
        return str(v).lower() if isinstance(v, bool) else str(v)
    return [f"{k}={text(v)}" for k, v in values.items()]


def _parse_value(key: str, raw: str, hint: Any) -> Any:
    base = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # Optional[X]
        if raw.lower() in ("none", "null"):
            return None
        base = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(base)
    try:
        if origin is tuple:
            item = typing.get_args(base)[0]
            return tuple(item(v) for v in raw.split(",") if v.strip())
        if base is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        return base(raw)
    except (TypeError, ValueError):
        raise ValueError(f"--set {key}={raw}: expected a value of type {hint}") from None


def check_keys(cls: type, d: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(
            f"Unknown {cls.__name__} key(s) {unknown}; known keys: {', '.join(sorted(known))}"
        )


def check_types(obj: Any) -> None:
    """Reject ill-typed values (e.g. iterations='600') with the key's name, before any work."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if not _is_instance(value, hint):
            raise TypeError(
                f"{type(obj).__name__}.{f.name}={value!r}: expected {_describe(hint)}, "
                f"got {type(value).__name__}"
            )


def check_record(cls: type, record: Any, file: str, name: str = "",
                 required: Iterable[str] = ()) -> None:
    """Check a record read from ``file`` against the types of ``cls``'s fields: it must be a
    JSON object holding the ``required`` keys, and each key that ``cls`` knows must hold a value
    of its type (keys it does not know are left to the reader: files of other versions).
    ``name`` says where in the file the record is (``"config"``, ``"row 3"``; "" for the whole
    file); errors name the file, the key, the value and the type expected.

    >>> from gan_lib.config import TrainConfig
    >>> check_record(TrainConfig, {"iterations": "abc"}, "runs/x/config.json", "config")
    Traceback (most recent call last):
    ...
    ValueError: runs/x/config.json: config.iterations='abc': expected int, got str (a string)
    >>> check_record(TrainConfig, "oops", "runs/x/config.json", "config")
    Traceback (most recent call last):
    ...
    ValueError: runs/x/config.json: config='oops': expected a JSON object of TrainConfig settings ({"key": value, ...}), got str (a string)
    """
    if not isinstance(record, dict):
        raise ValueError(f"{file}: {name or 'the file'}={_short_repr(record)}: expected a JSON "
                         f"object of {cls.__name__} settings ({{\"key\": value, ...}}), got "
                         f"{_json_kind(record)}")
    missing = [k for k in required if k not in record]
    if missing:
        raise ValueError(f"{file}: {name or 'the file'} lacks {', '.join(missing)}: expected "
                         f"every key that gan_lib writes there ({', '.join(required)})")
    hints = typing.get_type_hints(cls)
    for key, value in record.items():
        if key in hints and not _is_instance(value, hints[key]):
            raise ValueError(f"{file}: {name + '.' if name else ''}{key}={_short_repr(value)}: "
                             f"expected {_describe(hints[key])}, got {_json_kind(value)}")


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _json_kind(value: Any) -> str:
    """``str (a string)``: the Python type and, for people who edit JSON, its JSON name."""
    kinds = {str: "a string", list: "a list", dict: "an object", bool: "true/false",
             type(None): "null", int: "a number", float: "a number"}
    return f"{type(value).__name__} ({kinds.get(type(value), 'not JSON')})"


def _is_instance(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, (tuple, list)) and all(
            _is_instance(v, args[0]) for v in value
        )
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


__all__ = ["check_keys", "check_types", "check_record", "parse_set", "format_set"]
