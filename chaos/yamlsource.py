"""Read YAML keeping positions, so every configuration error names its file, line and field."""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from chaos.errors import CatalogError
from chaos.units import parse_duration

T = TypeVar("T")
D = TypeVar("D")

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_KINDS = {MappingNode: "a mapping", SequenceNode: "a list", ScalarNode: "a value"}
_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


class _Missing:
    """Sentinel default meaning "this key is required"."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_yaml(path: str | Path) -> Node:
    """Parse one YAML file into a positioned Node whose top level is a mapping."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise CatalogError("file not found; create it or fix the path", file=path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogError(
            f"cannot read the file ({err}); it must be UTF-8 text", file=path
        ) from err
    return parse_yaml(text, file=path)


def parse_yaml(text: str, *, file: str | Path) -> Node:
    """Compose `text` keeping positions; reject bad YAML, empty files and duplicate keys."""
    try:
        raw = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        raise CatalogError(f"invalid YAML: {_problem(err)}", file=file, line=_line(err)) from err
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        char = chr(err.character) if isinstance(err.character, int) else err.character
        message = f"invalid YAML: character U+{ord(char):04X} is not allowed; remove it"
        raise CatalogError(message, file=file, line=line) from err
    except yaml.YAMLError as err:
        raise CatalogError(f"invalid YAML: {err}", file=file) from err
    except RecursionError as err:
        raise CatalogError("invalid YAML: nested too deeply", file=file) from err
    if raw is None:
        raise CatalogError(
            "the file is empty; it must hold a mapping (key: value)", file=file, line=1
        )
    root = Node(raw, file=file, field="")
    if not isinstance(raw, MappingNode):
        raise root.error(f"the top level must be a mapping (key: value), got {root.describe()}")
    _check_keys(root)
    return root


def _line(err: yaml.MarkedYAMLError) -> int | None:
    mark = err.problem_mark or err.context_mark
    return mark.line + 1 if mark is not None else None


def _problem(err: yaml.MarkedYAMLError) -> str:
    """PyYAML's context and problem, with the line where the context began."""
    context = err.context or ""
    if context and err.context_mark is not None and err.context_mark.line + 1 != _line(err):
        context += f" (from line {err.context_mark.line + 1})"
    return "; ".join(part for part in (context, err.problem or "") if part)


def _check_keys(root: Node) -> None:
    """Reject non-scalar and duplicate keys anywhere in the document (PyYAML keeps the last)."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node.raw) in seen:
            continue
        seen.add(id(node.raw))
        if isinstance(node.raw, SequenceNode):
            pending.extend(node.as_list())
        elif isinstance(node.raw, MappingNode):
            pending.extend(_check_mapping_keys(node))
            pending.extend(
                Node(value, file=node.file, field=node.field)
                for key, value in node.raw.value
                if key.tag == _MERGE_TAG
            )


def _check_mapping_keys(node: Node) -> list[Node]:
    first_line: dict[str, int] = {}
    values = []
    for key, value in node.raw.value:
        if key.tag == _MERGE_TAG:
            continue
        here = key.start_mark.line + 1
        if not isinstance(key, ScalarNode):
            message = "keys must be plain names"
            raise CatalogError(message, file=node.file, line=here, field=node.field or None)
        field = node.child_field(key.value)
        if key.value in first_line:
            message = (
                f"duplicate key '{key.value}' (first on line {first_line[key.value]}); keep one"
            )
            raise CatalogError(message, file=node.file, line=here, field=field)
        first_line[key.value] = here
        values.append(Node(value, file=node.file, field=field, key_line=here, key=key.value))
    return values


class Node:
    """A YAML node with its file, line and dotted field: typed readers raise CatalogError there."""

    __slots__ = ("field", "file", "key", "key_line", "raw")

    def __init__(
        self,
        raw: yaml.Node,
        *,
        file: str | Path,
        field: str,
        key_line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.raw = raw
        self.file = file
        self.field = field
        self.key_line = key_line
        self.key = key

    def __repr__(self) -> str:
        return f"Node({self.field or '<top>'} at {self.file}:{self.line})"

    @property
    def line(self) -> int:
        """1-based line where the value starts."""
        return self.raw.start_mark.line + 1

    @property
    def is_null(self) -> bool:
        return isinstance(self.raw, ScalarNode) and self.raw.tag == _NULL_TAG

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.raw, ScalarNode)

    @property
    def is_list(self) -> bool:
        return isinstance(self.raw, SequenceNode)

    def child_field(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.field}[{key}]"
        return f"{self.field}.{key}" if self.field else key

    def error(self, message: str, *, at_key: bool = False) -> CatalogError:
        """A CatalogError at this value (or at its key, for "this key should not be here")."""
        line = self.key_line if at_key and self.key_line is not None else self.line
        return CatalogError(message, file=self.file, line=line, field=self.field or None)

    def describe(self) -> str:
        """How the value reads in a message: "'abc' (a string)", "a list"."""
        if not isinstance(self.raw, ScalarNode):
            return _KINDS[type(self.raw)]
        if self.is_null:
            return "nothing (null)"
        value = self.scalar
        kind = _TYPE_NAMES.get(type(value), type(value).__name__)
        return f"{self.raw.value!r} ({kind})"

    # -- scalars -------------------------------------------------------------------------------

    @property
    def scalar(self) -> Any:
        """The Python value of a scalar, as YAML types it (int, float, bool, str, None, date…)."""
        self._expect(ScalarNode, "a single value")
        try:
            return SafeConstructor().construct_object(self.raw, deep=True)
        except Exception as err:  # PyYAML's constructors raise many types for odd tags/values
            reason = err.problem if isinstance(err, yaml.MarkedYAMLError) else err
            raise self.error(f"cannot read {self.raw.value!r}: {reason}; quote it") from err

    def as_text(self) -> str:
        """The scalar exactly as written (so `no` stays "no" instead of becoming False)."""
        self._expect(ScalarNode, "a single value")
        return str(self.raw.value)

    def as_str(self) -> str:
        value = self.scalar
        if not isinstance(value, str):
            hint = f'; write "{self.raw.value}" in quotes' if value is not None else ""
            raise self.error(f"expected a string, got {self.describe()}{hint}")
        return value

    def as_env_name(self) -> str:
        """An environment variable name (letters, digits, '_'; no leading digit)."""
        name = self.as_str()
        if not ENV_NAME.match(name):
            raise self.error(f"{name!r} is not an environment variable name (letters, digits, '_')")
        return name

    def as_template(self, allowed: Collection[str]) -> str:
        """A str.format template whose only placeholders are `allowed` (checked, not filled)."""
        text = self.as_str()
        names = ", ".join(f"{{{name}}}" for name in sorted(allowed))
        try:
            fields = list(string.Formatter().parse(text))
        except ValueError as err:
            raise self.error(f"bad template {text!r} ({err}); write {{{{ }}}} for braces") from err
        for _, name, spec, conversion in fields:
            if name is not None and (name not in allowed or spec or conversion):
                raise self.error(f"placeholder {{{name}}} in {text!r} is not allowed; use {names}")
        return text

    def as_choice(self, choices: Collection[str]) -> str:
        text = self.as_text()
        if text not in choices:
            valid = ", ".join(choices)
            raise self.error(f"{text!r} is not one of: {valid}{did_you_mean(text, choices)}")
        return text

    def as_int(self, *, lo: int | None = None, hi: int | None = None) -> int:
        value = self.scalar
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {self.describe()}")
        return self._in_range(value, lo, hi)

    def as_float(self, *, lo: float | None = None, hi: float | None = None) -> float:
        value = self.scalar
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.error(f"expected a number, got {self.describe()}")
        return self._in_range(float(value), lo, hi)

    def as_duration(self, *, positive: bool = False) -> float:
        """Seconds from "500ms", "2s", "1m" or a plain number of seconds."""
        value = self.scalar
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            raise self.error(str(err)) from err
        if not math.isfinite(seconds):
            raise self.error(f"expected a finite duration such as '2s', got {self.describe()}")
        if positive and seconds <= 0:
            raise self.error(f"must be longer than zero, got {self.raw.value!r}; e.g. '100ms'")
        return seconds

    def as_value(self) -> Any:
        """Plain Python data (dict/list/scalars) for free-form values such as a request body."""
        return self._plain(frozenset())

    def _plain(self, outer: frozenset[int]) -> Any:
        if isinstance(self.raw, ScalarNode):
            return self.scalar
        if id(self.raw) in outer:
            raise self.error("a YAML alias refers to itself; write the value out")
        inner = outer | {id(self.raw)}
        if isinstance(self.raw, SequenceNode):
            return [item._plain(inner) for item in self.as_list()]
        return {entry.key: entry._plain(inner) for entry in self.entries()}

    def _in_range(self, value: T, lo: Any, hi: Any) -> T:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if lo is not None and hi is not None else ""
            bounds = bounds or (f"at least {lo}" if lo is not None else f"at most {hi}")
            raise self.error(f"must be {bounds}, got {self.raw.value}")
        return value

    def _expect(self, kind: type, wanted: str) -> None:
        if not isinstance(self.raw, kind):
            raise self.error(f"expected {wanted}, got {self.describe()}")

    # -- collections -----------------------------------------------------------------------------

    def as_list(self) -> list[Node]:
        self._expect(SequenceNode, "a list")
        return [
            Node(item, file=self.file, field=self.child_field(index))
            for index, item in enumerate(self.raw.value)
        ]

    def as_mapping(self) -> Node:
        self._expect(MappingNode, "a mapping (key: value)")
        return self

    def entries(self) -> list[Node]:
        """The mapping's values in order, each with .key and .key_line; `<<` merge keys applied."""
        return self._entries(frozenset())

    def _entries(self, outer: frozenset[int]) -> list[Node]:
        self.as_mapping()
        own = _check_mapping_keys(self)
        names = {entry.key for entry in own}
        for key, value in self.raw.value:
            if key.tag != _MERGE_TAG:
                continue
            for entry in self._merge_sources(key, value, outer | {id(self.raw)}):
                if entry.key not in names:
                    names.add(entry.key)
                    own.append(entry)
        return own

    def _merge_sources(self, key: yaml.Node, value: yaml.Node, outer: frozenset[int]) -> list[Node]:
        """Entries merged in by `<<: *anchor` or `<<: [*a, *b]` (earlier sources win)."""
        here = Node(value, file=self.file, field=self.field, key_line=key.start_mark.line + 1)
        sources = here.as_list() if isinstance(value, SequenceNode) else [here]
        entries: list[Node] = []
        for each in sources:
            if not isinstance(each.raw, MappingNode):
                raise here.error(f"'<<' merges mappings only, got {each.describe()}", at_key=True)
            if id(each.raw) in outer:
                raise here.error("a YAML merge (<<) refers to itself; remove it", at_key=True)
            entries.extend(each._entries(outer))
        return entries

    def child(self, key: str) -> Node | None:
        """The value under `key`, or None when absent."""
        return next((entry for entry in self.entries() if entry.key == key), None)

    def has(self, key: str) -> bool:
        """Whether `key` is present with a non-null value."""
        node = self.child(key)
        return node is not None and not node.is_null

    def allow_keys(self, *names: str) -> None:
        """Reject the first key not in `names`, suggesting the closest valid one."""
        for entry in self.entries():
            if entry.key not in names:
                valid = ", ".join(names)
                message = f"unknown key '{entry.key}'{did_you_mean(entry.key or '', names)}"
                raise entry.error(f"{message}; valid keys here: {valid}", at_key=True)

    def get(self, key: str, read: Callable[[Node], T], default: D = MISSING) -> T | D:
        """`read` the value under `key`; absent or null gives `default` (error when required)."""
        node = self.child(key)
        if node is None or node.is_null:
            if default is MISSING:
                raise self._missing(key, node)
            return default
        return read(node)

    def _missing(self, key: str, node: Node | None) -> CatalogError:
        if node is not None:
            return node.error(f"'{key}' needs a value", at_key=True)
        line = self.key_line if self.key_line is not None else self.line
        message = f"required key '{key}' is missing; add it here"
        return CatalogError(message, file=self.file, line=line, field=self.child_field(key))

    def require(self, key: str) -> Node:
        return self.get(key, _itself)

    def get_str(self, key: str, default: D = MISSING) -> str | D:
        return self.get(key, Node.as_str, default)

    def get_choice(self, key: str, choices: Collection[str], default: D = MISSING) -> str | D:
        return self.get(key, lambda node: node.as_choice(choices), default)

    def get_int(
        self, key: str, default: D = MISSING, *, lo: int | None = None, hi: int | None = None
    ) -> int | D:
        return self.get(key, lambda node: node.as_int(lo=lo, hi=hi), default)

    def get_float(
        self, key: str, default: D = MISSING, *, lo: float | None = None, hi: float | None = None
    ) -> float | D:
        return self.get(key, lambda node: node.as_float(lo=lo, hi=hi), default)

    def get_duration(self, key: str, default: D = MISSING, *, positive: bool = False) -> float | D:
        return self.get(key, lambda node: node.as_duration(positive=positive), default)

    def get_list(self, key: str, default: D = MISSING) -> list[Node] | D:
        return self.get(key, Node.as_list, default)

    def get_mapping(self, key: str, default: D = MISSING) -> Node | D:
        return self.get(key, Node.as_mapping, default)


def _itself(node: Node) -> Node:
    return node


def check_version(root: Node, *, supported: int, required: bool) -> None:
    """Refuse files written for another schema version, before reading anything else."""
    node = root.child("version")
    if node is None or node.is_null:
        if required:
            raise root._missing("version", node)
        return
    value = node.scalar
    if value != supported or isinstance(value, bool):
        message = f"unsupported version {node.raw.value}; pytest-chaos reads version {supported}"
        raise node.error(f"{message}: write 'version: {supported}'")
