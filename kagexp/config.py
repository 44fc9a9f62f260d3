"""YAML in and out, the strict deep merge of an override into a base config, flatten and diff.

PyYAML's safe loader follows YAML 1.1, where `1e-3` is a string and duplicate keys
silently overwrite each other; configs need `1e-3` to be a float and a duplicate key
to be an error, so the loader here fixes both.
"""

from __future__ import annotations

import copy
import difflib
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml
from deepmerge import Merger

from kagexp.errors import ConfigError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_FLOAT_TAG = "tag:yaml.org,2002:float"
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(_Base):
    """Safe loader with YAML 1.2 floats and duplicate keys rejected."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, list("-+0123456789."))


class _Dumper(_BaseDumper):
    pass


class Config(dict):
    """A plain dict of the merged config that also allows `cfg.model.params.max_depth`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            dict.__setitem__(self, key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            hint = did_you_mean(name, [str(k) for k in self])
            raise AttributeError(f"config has no key {name!r}{hint}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = _wrap(value)

    def __delattr__(self, name: str) -> None:
        del self[name]

    def to_dict(self) -> dict:
        """A plain nested dict (and lists), e.g. for libraries that check `type(x) is dict`."""
        return _unwrap(self)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Config):
        return Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


_Dumper.add_representer(Config, _Dumper.represent_dict)


# --- YAML in and out -------------------------------------------------------------------


def position(source: str, line: int | None, first_line: int | None) -> str:
    """`file:line` when the text's place in the file is known, else its line within the text."""
    if line is None:
        return source
    if first_line is None:
        return f"{source} (override line {line + 1})"
    return f"{source}:{line + first_line}"


def parse_yaml(text: str, source: str, first_line: int | None = 1, label: str = "") -> Any:
    """Parse YAML text; errors name `source`, the line (numbered from `first_line`) and `label`."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = position(source, mark.line if mark else None, first_line) + (f": {label}" if label else "")
        problem = exc.problem or exc.context or "invalid YAML"
        lines = text.splitlines()
        if mark and mark.line < len(lines) and "\t" in lines[mark.line]:
            problem += " (a tab: indent YAML with spaces)"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


def parse_mapping(text: str, source: str, first_line: int | None = 1, label: str = "") -> dict:
    """Parse YAML that must be a mapping; empty text is an empty mapping."""
    data = parse_yaml(text, source, first_line, label)
    if data is None:
        return {}
    if not isinstance(data, dict):
        where = position(source, _first_content_line(text), first_line) + (f": {label}" if label else "")
        raise ConfigError(
            f"{where}: expected a mapping of keys to values at the top level, found a {type(data).__name__}"
        )
    return data


def _first_content_line(text: str) -> int:
    lines = text.splitlines()
    return next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), 0)


def read_mapping(path, source: str | None = None) -> dict:
    """Read a YAML file that must hold a mapping."""
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from None
    return parse_mapping(text, source)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def dedent(text: str) -> str:
    """Override strings are written indented inside exp.py; YAML wants them flush left."""
    return textwrap.dedent(text)


def key_line(text: str, path: tuple[str, ...]) -> int | None:
    """The 0-based line of the key at `path` in YAML `text`, for error messages."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return line
        for key_node, value_node in node.value:
            if key_node.value == key:
                line, node = key_node.start_mark.line, value_node
                break
        else:
            return line
    return line


# --- strict merge -----------------------------------------------------------------------

_merger = Merger([(list, "override"), (dict, "merge"), (set, "union")], ["override"], ["override"])


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an override; `path` holds the keys as written in the override."""

    path: tuple[str, ...]
    message: str


def check_override(
    base: dict,
    override: dict,
    strict_keys: bool = True,
    strict_types: bool = True,
    base_name: str = "the base config",
    extensible: bool = True,
) -> list[Problem]:
    """Every unknown key, misused `+key` and type change in `override`, not just the first.

    `extensible=False` is for files with a fixed schema (kagexp.yml), where `+key` makes no sense.
    """
    checker = _Checker(list(flatten(base, keep_branches=True)), strict_keys, strict_types, base_name, extensible)
    checker.check(base, override, (), ())
    return checker.problems


@dataclass
class _Checker:
    candidates: list[str]
    strict_keys: bool
    strict_types: bool
    base_name: str
    extensible: bool
    problems: list[Problem] = field(default_factory=list)

    def check(self, base: dict, override: dict, raw_path: tuple, path: tuple) -> None:
        for raw_key, value in override.items():
            key = raw_key[1:] if isinstance(raw_key, str) and raw_key.startswith("+") else raw_key
            here_raw, here = (*raw_path, str(raw_key)), (*path, str(key))
            if key != raw_key:
                self._added(base, key, here_raw, ".".join(here))
            elif key not in base:
                self._unknown(key, here_raw, ".".join(here))
            elif isinstance(base[key], dict) and isinstance(value, dict):
                self.check(base[key], value, here_raw, here)
            elif self.strict_types and not same_kind(base[key], value):
                self.problems.append(
                    Problem(
                        here_raw,
                        f"`{'.'.join(here)}` is {_describe(value)} here but {_describe(base[key])} in "
                        f"{self.base_name}; write a value of the same type",
                    )
                )

    def _added(self, base: dict, key: str, path: tuple, dotted: str) -> None:
        if not self.extensible:
            self.problems.append(Problem(path, f"`+{key}`: this file takes no new keys; write `{key}`"))
        elif key in base:
            self.problems.append(
                Problem(path, f"`+{key}` adds a key, but `{dotted}` already exists; write `{key}` to change it")
            )

    def _unknown(self, key: str, path: tuple, dotted: str) -> None:
        if not self.strict_keys and self.extensible:
            return
        hint = did_you_mean(dotted, self.candidates) or _same_leaf(key, self.candidates)
        if not self.extensible:
            self.problems.append(Problem(path, f"unknown key `{dotted}`{hint}"))
            return
        advice = f" Write `+{key}` to add a new key." if hint else f"; write `+{key}` to add a new key"
        self.problems.append(Problem(path, f"unknown key `{dotted}`{hint}{advice}"))


def same_kind(old: Any, new: Any) -> bool:
    """Whether `new` may replace `old`: same type, int and float mixed, or either null."""
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return True
    if isinstance(old, dict) and isinstance(new, dict):
        return True
    return type(old) is type(new)


def _describe(value: Any) -> str:
    kind = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an int", float: "a float"}
    shown = "" if isinstance(value, (dict, list)) else f" ({value!r})"
    return kind.get(type(value), f"a {type(value).__name__}") + shown


def did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def _same_leaf(key: str, candidates: list[str]) -> str:
    """A key written at the wrong level: `max_depth` when the base has `model.params.max_depth`."""
    for candidate in candidates:
        if candidate.rsplit(".", 1)[-1] == key:
            return f"; did you mean `{candidate}`?"
    return ""


def strip_plus(override: dict) -> dict:
    """The override with `+key` written as `key` (after `check_override` accepted it)."""
    out = {}
    for key, value in override.items():
        if isinstance(key, str) and key.startswith("+"):
            key = key[1:]
        out[key] = strip_plus(value) if isinstance(value, dict) else value
    return out


def merge(base: dict, override: dict) -> dict:
    """Deep-merge `override` into a copy of `base`: mappings merge, lists and scalars replace."""
    return _merger.merge(copy.deepcopy(base), copy.deepcopy(strip_plus(override)))


# --- flatten and diff -----------------------------------------------------------------


def flatten(data: dict, prefix: str = "", keep_branches: bool = False) -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}`; empty mappings stay as leaves."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            if keep_branches:
                out[dotted] = value
            out.update(flatten(value, f"{dotted}.", keep_branches))
        else:
            out[dotted] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict:
    """Dotted keys as nested mappings: the inverse of `flatten`; `a` and `a.b` together are an error."""
    out: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for depth, part in enumerate(parents, start=1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"`{dotted}` goes inside `{'.'.join(parents[:depth])}`, which has a value")
        if isinstance(node.get(leaf), dict):
            raise ConfigError(f"`{dotted}` has a value and keys inside it")
        node[leaf] = value
    return out


@dataclass(frozen=True)
class Change:
    """One dotted key that differs between two configs; `kind` is changed, added or removed."""

    key: str
    kind: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "changed":
            return f"~ {self.key}: {yaml_text(self.old)} -> {yaml_text(self.new)}"
        if self.kind == "added":
            return f"+ {self.key}: {yaml_text(self.new)}"
        return f"- {self.key}: {yaml_text(self.old)}"


def yaml_text(value: Any) -> str:
    """A value as it would be written in a config: `true`, `null`, `adam`, `'3'`, `[1, 2]`."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=10**6, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def same_value(a: Any, b: Any) -> bool:
    """Equality as a config means it: `1`, `1.0` and `true` differ, even inside lists; NaN is NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def diff(old: dict, new: dict) -> list[Change]:
    """The leaves that differ between two configs, in the order they appear."""
    a, b = flatten(old), flatten(new)
    changes = []
    for key, value in a.items():
        if key not in b:
            changes.append(Change(key, "removed", old=value))
        elif not same_value(value, b[key]):
            changes.append(Change(key, "changed", old=value, new=b[key]))
    changes.extend(Change(key, "added", new=value) for key, value in b.items() if key not in a)
    return changes


def locate(problems: list[Problem], text: str, source: str, first_line: int | None = 1, label: str = "") -> list[str]:
    """One `file:line: [label: ]message` line per problem, for editors and humans alike."""
    lines = []
    for problem in problems:
        where = position(source, key_line(text, problem.path), first_line)
        lines.append(f"{where}: {label + ': ' if label else ''}{problem.message}")
    return lines
