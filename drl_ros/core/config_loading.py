"""Strict, typed loading of (nested) config dataclasses from YAML files, mappings and overrides.

Every drl_ros component is configured by one dataclass.  This module turns untrusted, hand-written
YAML into those dataclasses and fails early and precisely: an unknown key, a missing required
field, or a value of the wrong type is a :class:`ConfigError` naming the file and the full dotted
field path, e.g.::

    config/reach.yaml: sac.learning_rate: expected a float, got 'fast' (str)
    config/reach.yaml: sac.lerning_rate: unknown field of SACConfig; did you mean 'learning_rate'?
        Valid fields: batch_size, gamma, learning_rate

Coercion rules (driven by the annotations, resolved with ``typing.get_type_hints`` so that
``from __future__ import annotations`` works):

- ``bool``: only ``true``/``false`` (an ``int`` is refused: ``1`` for a flag is likely a typo).
- ``int``: ints; integral floats and numeric strings (``1e6`` -> 1000000); never bools.
- ``float``: floats, ints, and numeric strings.  PyYAML implements YAML 1.1, which reads ``3e-4``
  (no dot) as the *string* ``'3e-4'``; accepting numeric strings here is what makes
  ``learning_rate: 3e-4`` work.  Fields typed ``str``/``Any`` keep such strings as they are.
- ``str``: only strings (quote numbers in YAML).  ``pathlib.Path``: strings.
- ``Optional[X]`` / ``X | None`` / other unions (arms tried in declaration order),
  ``Literal[...]``, ``Enum`` (by value, then by name), ``list[X]``, ``tuple[X, ...]``,
  ``tuple[X, Y]``, ``set[X]``, ``dict[K, V]``, ``Any``, and nested dataclasses.
- Errors raised as ``ValueError`` by a dataclass's ``__post_init__`` are re-raised as
  :class:`ConfigError` prefixed with that dataclass's dotted path.

YAML is read with PyYAML's safe loader (no arbitrary objects), extended to refuse duplicate keys,
which ``yaml.safe_load`` would silently resolve to the last one.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import difflib
import enum
import functools
import inspect
import itertools
import math
import os
import re
import secrets
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Final, Literal, TypeVar, Union

import yaml

__all__ = [
    "ConfigError",
    "config_to_dict",
    "dump_config_yaml",
    "field_docs",
    "load_config",
    "load_yaml",
]

T = TypeVar("T")

_INT_RE: Final = re.compile(r"[-+]?\d+")
_FLOAT_RE: Final = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_IDENTIFIER_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_REPR: Final = 80

# A path element: a field name, a list index or a dict key.
PathPart = object


class ConfigError(ValueError):
    """A config source does not match its dataclass (the message names file and field path)."""


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


class _StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges may legitimately repeat keys
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: the base class reports it properly
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, *, source: str | None = None) -> Any:
    """Parse YAML ``text`` safely (no Python objects, no duplicate keys).

    Raises:
        ConfigError: invalid YAML; the message includes ``source`` and the line.
    """
    try:
        # A SafeLoader subclass: as safe as yaml.safe_load, plus the duplicate-key check.
        return yaml.load(text, Loader=_StrictSafeLoader)
    except yaml.YAMLError as exc:
        prefix = f"{source}: " if source else ""
        raise ConfigError(f"{prefix}invalid YAML: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Errors and paths
# --------------------------------------------------------------------------------------------


def _format_path(path: tuple[PathPart, ...]) -> str:
    """``("sac", "learning_rate")`` -> ``sac.learning_rate``; ints and odd keys use brackets."""
    out = ""
    for part in path:
        if isinstance(part, str) and _IDENTIFIER_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def _error(source: str | None, path: tuple[PathPart, ...], message: str) -> ConfigError:
    parts = [p for p in (source, _format_path(path)) if p]
    return ConfigError(": ".join([*parts, message]))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_REPR:
        text = text[: _MAX_REPR - 3] + "..."
    return f"{text} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


# --------------------------------------------------------------------------------------------
# Type introspection
# --------------------------------------------------------------------------------------------


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except NameError as exc:
        # Typically a dataclass defined inside a function with postponed annotations.
        raise TypeError(f"cannot resolve the annotations of {cls.__qualname__}: {exc}") from exc


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    # init=False fields are computed by the class, so a config may not set them.
    return [f for f in dataclasses.fields(cls) if f.init]


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass ``tp`` is, or that ``Optional[...]`` wraps; else None."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if _is_union(tp):
        candidates = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(candidates) == 1:
            return _dataclass_in(candidates[0])
    return None


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _same_kind(a: Any, b: Any) -> bool:
    """``==`` without Python's ``True == 1`` conflation."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


# --------------------------------------------------------------------------------------------
# Coercion
# --------------------------------------------------------------------------------------------


class _Coercer:
    """Coerces raw YAML values to annotated types; ``source`` labels error messages."""

    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, path: tuple[PathPart, ...], message: str) -> ConfigError:
        return _error(self.source, path, message)

    def expected(self, path: tuple[PathPart, ...], what: str, value: Any) -> ConfigError:
        return self.fail(path, f"expected {what}, got {_describe(value)}")

    # -- dataclasses ---------------------------------------------------------------------------

    def build(self, cls: type[T], data: Any, path: tuple[PathPart, ...]) -> T:
        if isinstance(data, cls):
            return data  # already built (e.g. a default passed through a mapping)
        if data is None:
            data = {}  # an empty YAML file or section means "all defaults"
        if not isinstance(data, Mapping):
            raise self.expected(path, f"a mapping for {cls.__name__}", data)
        hints = _type_hints(typing.cast(type, cls))
        fields = _init_fields(cls)
        names = [f.name for f in fields]
        for key in data:
            if not isinstance(key, str):
                raise self.fail(path, f"field names must be strings, got {_describe(key)}")
            if key not in names:
                raise self.fail((*path, key), _unknown_field_message(cls, key, names))
        kwargs: dict[str, Any] = {}
        missing: list[str] = []
        for f in fields:
            if f.name in data:
                kwargs[f.name] = self.coerce(hints[f.name], data[f.name], (*path, f.name))
            elif not _has_default(f):
                missing.append(f.name)
        if len(missing) == 1:
            raise self.fail((*path, missing[0]),
                            f"missing required field (no default in {cls.__name__})")
        if missing:
            raise self.fail(path, f"missing required fields of {cls.__name__}: "
                                  + ", ".join(_format_path((*path, m)) for m in missing))
        try:
            return cls(**kwargs)
        except ConfigError:
            raise
        except ValueError as exc:  # __post_init__ validation
            raise self.fail(path, str(exc)) from exc

    # -- any annotated type --------------------------------------------------------------------

    def coerce(self, tp: Any, value: Any, path: tuple[PathPart, ...]) -> Any:
        if tp is Any or tp is object or isinstance(tp, TypeVar):
            return value
        if tp is type(None) or tp is None:
            if value is None:
                return None
            raise self.expected(path, "null", value)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (Union, types.UnionType):
            return self._union(args, value, path)
        if origin is Literal:
            for allowed in args:
                if _same_kind(allowed, value):
                    return allowed
            choices = ", ".join(repr(a) for a in args)
            raise self.expected(path, f"one of {choices}", value)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.build(tp, value, path)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum(tp, value, path)
        if tp is bool:
            if isinstance(value, bool):
                return value
            raise self.expected(path, "a bool (true/false)", value)
        if tp is int:
            return self._int(value, path)
        if tp is float:
            return self._float(value, path)
        if tp is str:
            if isinstance(value, str):
                return value
            raise self.expected(path, "a str (quote it in YAML)", value)
        if isinstance(tp, type) and issubclass(tp, PurePath):
            if isinstance(value, (str, PurePath)):
                return tp(value)
            raise self.expected(path, "a path string", value)
        container = origin if origin is not None else tp
        if container in (list, collections.abc.Sequence, collections.abc.MutableSequence):
            item = args[0] if args else Any
            return [self.coerce(item, v, (*path, i)) for i, v in enumerate(self._seq(value, path))]
        if container in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
            item = args[0] if args else Any
            items = self._seq(value, path)
            made = {self.coerce(item, v, (*path, i)) for i, v in enumerate(items)}
            return frozenset(made) if container is frozenset else made
        if container is tuple:
            return self._tuple(args, value, path)
        if container in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
            key_tp, val_tp = args if args else (Any, Any)
            if not isinstance(value, Mapping):
                raise self.expected(path, "a mapping", value)
            return {
                self.coerce(key_tp, k, (*path, k)): self.coerce(val_tp, v, (*path, k))
                for k, v in value.items()
            }
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        raise self.expected(path, f"a {_type_name(tp)}", value)

    def _union(self, args: tuple[Any, ...], value: Any, path: tuple[PathPart, ...]) -> Any:
        arms = [a for a in args if a is not type(None)]
        if value is None:
            if len(arms) < len(args):
                return None
            raise self.expected(path, " | ".join(_type_name(a) for a in arms), value)
        if len(arms) == 1:
            return self.coerce(arms[0], value, path)
        for arm in arms:  # declaration order is the user's preference
            try:
                return self.coerce(arm, value, path)
            except ConfigError:
                continue
        raise self.expected(path, " | ".join(_type_name(a) for a in args), value)

    def _enum(self, tp: type[enum.Enum], value: Any, path: tuple[PathPart, ...]) -> enum.Enum:
        if isinstance(value, tp):
            return value
        probe = tuple(value) if isinstance(value, list) else value  # YAML has no tuples
        for member in tp:
            if _same_kind(member.value, probe):
                return member
        if isinstance(value, str) and value in tp.__members__:
            return tp.__members__[value]
        choices = ", ".join(repr(m.value) for m in tp)
        raise self.expected(path, f"a {tp.__name__} value (one of {choices})", value)

    def _int(self, value: Any, path: tuple[PathPart, ...]) -> int:
        if isinstance(value, bool):
            raise self.expected(path, "an int", value)
        if isinstance(value, int):
            return value
        number: float | None = None
        if isinstance(value, float):
            number = value
        elif isinstance(value, str):
            if _INT_RE.fullmatch(value):
                return int(value)
            if _FLOAT_RE.fullmatch(value):
                number = float(value)  # "1e6" (a str in YAML 1.1)
        if number is not None and math.isfinite(number) and number.is_integer():
            return int(number)
        raise self.expected(path, "an int", value)

    def _float(self, value: Any, path: tuple[PathPart, ...]) -> float:
        if isinstance(value, bool):
            raise self.expected(path, "a float", value)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value):
            return float(value)  # "3e-4": PyYAML (YAML 1.1) does not read it as a float
        raise self.expected(path, "a float", value)

    def _seq(self, value: Any, path: tuple[PathPart, ...]) -> Sequence[Any]:
        if isinstance(value, (list, tuple)):
            return value
        raise self.expected(path, "a list", value)

    def _tuple(self, args: tuple[Any, ...], value: Any, path: tuple[PathPart, ...]) -> tuple[Any, ...]:
        items = self._seq(value, path)
        if not args:
            return tuple(items)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(self.coerce(args[0], v, (*path, i)) for i, v in enumerate(items))
        if args == ((),):  # tuple[()]
            args = ()
        if len(items) != len(args):
            raise self.expected(path, f"a list of {len(args)} items", value)
        return tuple(self.coerce(a, v, (*path, i)) for i, (a, v) in enumerate(zip(args, items)))


def _unknown_field_message(cls: type, key: str, valid: Sequence[str]) -> str:
    message = f"unknown field of {cls.__name__}"
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if close:
        message += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return message + ". Valid fields: " + (", ".join(sorted(valid)) or "(none)")


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def _is_mapping_type(tp: Any) -> bool:
    """Whether an override may descend into a value of type ``tp`` by key."""
    origin = typing.get_origin(tp)
    return (tp in (dict, Any, object) or isinstance(tp, TypeVar)
            or origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping))


def _apply_override(cls: type, data: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in the raw ``data`` (copy-on-write along the path), validating it."""
    label = f"override {override!r}"
    dotted, sep, raw = override.partition("=")
    dotted = dotted.strip()
    parts = dotted.split(".")
    if not sep or not dotted or any(not p for p in parts):
        raise ConfigError(f"{label}: expected 'dotted.field.path=value'")
    value = load_yaml(raw, source=label)
    coercer = _Coercer(label)
    tp: Any = cls
    container = data
    path: tuple[PathPart, ...] = ()
    for depth, part in enumerate(parts):
        field: dataclasses.Field[Any] | None = None
        dc = _dataclass_in(tp)
        if dc is not None:
            fields = {f.name: f for f in _init_fields(dc)}
            if part not in fields:
                raise _error(label, (*path, part), _unknown_field_message(dc, part, list(fields)))
            field = fields[part]
            field_tp: Any = _type_hints(dc)[part]
        elif _is_mapping_type(tp):
            args = typing.get_args(tp)
            field_tp = args[1] if args else Any
        else:  # pragma: no cover - guarded by the check below on the previous level
            raise _error(label, path, f"cannot set {part!r} inside a {_type_name(tp)}")
        path = (*path, part)
        if depth == len(parts) - 1:
            coercer.coerce(field_tp, value, path)  # fail now, naming the override
            container[part] = value
            return
        if _dataclass_in(field_tp) is None and not _is_mapping_type(field_tp):
            raise _error(label, path, f"cannot set {parts[depth + 1]!r} inside a "
                                      f"{_type_name(field_tp)}")
        child = container.get(part)
        if child is None:
            # Start from the field's default so that its other sub-fields keep their values.
            default = _default_of(field) if field is not None else None
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                child = config_to_dict(default)
            elif isinstance(default, Mapping):
                child = dict(default)
            else:
                child = {}
        elif dataclasses.is_dataclass(child) and not isinstance(child, type):
            child = config_to_dict(child)
        elif isinstance(child, Mapping):
            child = dict(child)  # copy: never mutate the caller's mapping
        else:
            raise _error(label, path, f"cannot set {parts[depth + 1]!r} inside "
                                      f"{_describe(child)}")
        container[part] = child
        container = child
        tp = field_tp


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_config(
    cls: type[T],
    source: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    overrides: Sequence[str] = (),
    source_name: str | None = None,
) -> T:
    """Build the dataclass ``cls`` from a YAML file or a mapping, strictly.

    Args:
        cls: the (possibly nested) config dataclass.
        source: a YAML file path (``str`` or ``Path``), a mapping, or None for all defaults.
        overrides: CLI-style ``"sac.learning_rate=1e-3"`` strings applied after the source;
            each value is parsed as YAML, then coerced like any other value.
        source_name: label used in error messages for a mapping source.

    Raises:
        ConfigError: unknown/missing fields, wrong types, invalid YAML or ``__post_init__``
            validation errors; the message names the source and the dotted field path.
        OSError: the file cannot be read.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"load_config needs a dataclass type, got {cls!r}")
    label: str | None
    if isinstance(source, (str, os.PathLike)):
        label = source_name or os.fspath(source)
        text = Path(source).read_text(encoding="utf-8")
        data: Any = load_yaml(text, source=label)
    else:
        label = source_name
        data = source
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _error(label, (), f"expected a mapping for {cls.__name__} at the top level, "
                                f"got {_describe(data)}")
    if overrides:
        data = dict(data)
        for override in overrides:
            _apply_override(cls, data, override)
    return _Coercer(label).build(cls, data, ())


def _to_plain(value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_plain(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)
            for f in _init_fields(type(value))
        }
    if isinstance(value, enum.Enum):
        return _to_plain(value.value, path)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {_to_plain(k, path): _to_plain(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [_to_plain(v, path) for v in value]
        try:
            return sorted(items)  # deterministic files
        except TypeError:
            return items
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{path or '<root>'}: cannot serialize {_describe(value)}")


def config_to_dict(obj: Any) -> dict[str, Any]:
    """A plain, JSON/YAML-serializable dict of a config dataclass instance.

    Tuples and sets become lists, enums their values, paths strings; ``init=False`` fields are
    left out (they are computed).  ``load_config(type(obj), config_to_dict(obj)) == obj``.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"config_to_dict needs a dataclass instance, got {_describe(obj)}")
    result = _to_plain(obj, "")
    assert isinstance(result, dict)
    return result


def dump_config_yaml(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``config_to_dict(obj)`` as YAML to ``path`` (atomically) and return the path."""
    target = Path(path)
    text = yaml.safe_dump(config_to_dict(obj), sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


@functools.cache
def _own_field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings written in ``cls``'s own body (not its bases)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (REPL, compiled): no docs rather than an error
        return {}
    tree = ast.parse(source)
    class_node = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                       and n.name == cls.__name__), None)
    if class_node is None:
        return {}
    docs: dict[str, str] = {}
    body = class_node.body
    for stmt, following in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def field_docs(cls: type, *, recursive: bool = False) -> dict[str, str]:
    """Per-field documentation of a config dataclass, from attribute docstrings.

    The drl_ros convention is a string literal right after each field::

        learning_rate: float = 3e-4
        \"\"\"Adam step size.\"\"\"

    Inherited fields are documented by the class that defines them (a subclass may re-document).
    A field without a docstring falls back to ``field(metadata={"doc": ...})``, else is absent.
    With ``recursive=True``, fields of nested dataclasses are included under dotted names
    (``"sac.learning_rate"``), matching ROS parameter names.
    """
    return _field_docs(cls, recursive, frozenset())


def _field_docs(cls: type, recursive: bool, seen: frozenset[type]) -> dict[str, str]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"field_docs needs a dataclass type, got {cls!r}")
    merged: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            merged.update(_own_field_docs(klass))
    docs: dict[str, str] = {}
    hints = _type_hints(cls) if recursive else {}
    for f in dataclasses.fields(cls):
        doc = merged.get(f.name) or f.metadata.get("doc")
        if isinstance(doc, str):
            docs[f.name] = doc
        nested = _dataclass_in(hints.get(f.name)) if recursive else None
        if nested is not None and nested not in seen and nested is not cls:  # self-reference
            for sub, sub_doc in _field_docs(nested, True, seen | {cls}).items():
                docs[f"{f.name}.{sub}"] = sub_doc
    return docs
