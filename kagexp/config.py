"""YAML in and out, the strict deep merge of an override into a base config, flatten and diff.

PyYAML's safe loader follows YAML 1.1, where `1e-3` is a string and duplicate keys
silently overwrite each other; configs need `1e-3` to be a float and a duplicate key
to be an error, so the loader here fixes both. It also refuses documents that aliases
would blow up ("billion laughs"): PyYAML shares aliased objects, but every walk over the
config (hashing, flattening, JSON) expands them.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
import re
import stat
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kagexp.errors import MAX_PROBLEMS, ConfigError

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


# Aliases may add this many nodes to a document, or this many times the nodes written, whichever
# is more: a few anchors merged into many sections pass, a bomb (9**n nodes from 10n) does not.
# The same rule as expat's amplification limit for XML entities.
ALIAS_NODES, ALIAS_FACTOR = 10_000, 100


class _Loader(_Base):
    """Safe loader with YAML 1.2 floats, and duplicate keys, recursive aliases and alias bombs rejected."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.aliased = not isinstance(stream, str) or "*" in stream  # no `*`, no alias: nothing to check

    def construct_document(self, node):
        if self.aliased:
            _check_aliases(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
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
                        "while constructing a mapping", node.start_mark, _duplicate(seen[key], key), key_node.start_mark
                    )
                seen[key] = key
        return super().construct_mapping(node, deep)


def _duplicate(first: Any, key: Any) -> str:
    if type(first) is type(key):
        return f"found duplicate key {key!r}"
    return f"found keys `{key_text(first)}` and `{key_text(key)}`, which Python takes as one key; keep one"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a node graph that contains itself, or that aliases expand past the limits above.

    Each distinct node's expanded size is computed once (the graph, not its expansion), without
    recursion (no recursion limit): a 400-byte bomb of 9**9 nodes is measured in microseconds.
    """
    sizes: dict[int, int] = {}
    closed: list[yaml.Node] = []
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            closed.append(node)
        elif id(node) in open_nodes:
            raise _alias_error(node, "an alias refers to a node that contains it (a recursive alias)")
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    limit = max(ALIAS_NODES, ALIAS_FACTOR * len(sizes))
    if sizes[id(root)] - len(sizes) > limit:
        where = next(node for node in closed if sizes[id(node)] > limit)  # the first that is too big alone
        raise _alias_error(where, f"aliases here expand to more than {limit:,} nodes (an alias bomb?)")


def _alias_error(node: yaml.Node, problem: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(None, None, f"{problem}; write the values out", node.start_mark)


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


def read_mapping(path: Path, source: str | None = None) -> dict:
    """Read a YAML file that must hold a mapping."""
    source = source or str(path)
    return parse_mapping(read_text(path, source), source)


def read_text(path: Path, source: str) -> str:
    """A regular file's UTF-8 text; a folder, a FIFO (reading would hang) or bytes that are not
    UTF-8 are one clear error naming `source` (and the line of the first bad byte)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise ConfigError(f"{source}: {kind}; it must be a YAML file")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{source}:{line}: cannot read: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8"
        ) from None


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def dedent(text: str) -> str:
    """Override strings are written indented inside exp.py; YAML wants them flush left."""
    return textwrap.dedent(text)


def key_line(text: str, path: tuple) -> int | None:
    """The 0-based line of the key at `path` in YAML `text`, for error messages."""
    return key_lines(text, [path])[0]


def key_lines(text: str, paths: list[tuple]) -> list[int | None]:
    """The 0-based line of each key path in `text` (the line of the deepest key found), composing
    the text once: locating thousands of problems stays linear. Keys compare with their type, so
    `1` and `'1'` are told apart."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        return [None] * len(paths)
    finally:
        loader.dispose()
    indexes: dict[int, dict] = {}
    return [_walk(loader, root, path, indexes) for path in paths]


def _walk(loader: _Loader, node: yaml.Node | None, path: tuple, indexes: dict[int, dict]) -> int | None:
    line = None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return line
        if id(node) not in indexes:
            indexes[id(node)] = _index(loader, node)
        found = indexes[id(node)].get(_typed(key))
        if found is None:
            return line
        line, node = found[0].start_mark.line, found[1]
    return line


def _index(loader: _Loader, node: yaml.MappingNode) -> dict[tuple, tuple[yaml.Node, yaml.Node]]:
    index = {}
    for key_node, value_node in node.value:
        if key_node.tag != "tag:yaml.org,2002:merge":
            index[_typed(loader.construct_object(key_node, deep=True))] = (key_node, value_node)
    return index


def _typed(key: Any) -> tuple:
    """A dict key under which `1`, `1.0` and `True` stay apart (Python takes them as one key)."""
    return (type(key), key)


# --- strict merge -----------------------------------------------------------------------


@functools.cache
def _merger():
    """deepmerge, imported on first merge: reading a recorded config (an offline Kaggle kernel) needs only yaml."""
    from deepmerge import Merger

    return Merger([(list, "override"), (dict, "merge"), (set, "union")], ["override"], ["override"])


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an override; `path` holds the keys as written in the override (with their types)."""

    path: tuple
    message: str


def check_override(
    base: dict,
    override: dict,
    strict_keys: bool = True,
    strict_types: bool = True,
    base_name: str = "the base config",
    extensible: bool = True,
    hints: int = MAX_PROBLEMS,
) -> list[Problem]:
    """Every unknown key, misused `+key` and type change in `override`, not just the first.

    `extensible=False` is for files with a fixed schema (kagexp.yml), where `+key` makes no sense.
    A suggestion costs a search of the base's keys, so only the first `hints` unknown keys get
    one: an error shows `MAX_PROBLEMS` lines, and 4,000 typos stay linear.
    """
    candidates = list(flatten(base, keep_branches=True))
    checker = _Checker(candidates, strict_keys, strict_types, base_name, extensible, hints)
    checker.check(base, override, (), ())
    return checker.problems


@dataclass
class _Checker:
    candidates: list[str]
    strict_keys: bool
    strict_types: bool
    base_name: str
    extensible: bool
    hints: int
    problems: list[Problem] = field(default_factory=list)

    def check(self, base: dict, override: dict, raw_path: tuple, path: tuple) -> None:
        for raw_key, value in override.items():
            added = isinstance(raw_key, str) and raw_key.startswith("+")
            key = raw_key[1:] if added else raw_key
            here_raw, here = (*raw_path, raw_key), (*path, key_text(key))
            if added:
                self._added(base, key, here_raw, ".".join(here))
            elif not _has_key(base, key):
                self._unknown(base, key, here_raw, here)
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

    def _unknown(self, base: dict, key: Any, path: tuple, here: tuple) -> None:
        if not self.strict_keys and self.extensible:
            return
        dotted = ".".join(here)
        hint = self._hint(base, key, here) if len(self.problems) < self.hints else ""
        if not self.extensible:
            self.problems.append(Problem(path, f"unknown key `{dotted}`{hint}"))
        elif isinstance(key, str):
            plus = _plus(key)
            advice = f" Write `{plus}` to add a new key." if hint else f"; write `{plus}` to add a new key"
            self.problems.append(Problem(path, f"unknown key `{dotted}`{hint}{advice}"))
        else:  # YAML read `+5` as the number 5: only a quoted `'+5'` adds a key
            text = here[-1]
            self.problems.append(
                Problem(
                    path,
                    f"unknown key `{dotted}` (YAML reads this key as {kind(key)}, not text)"
                    f"{hint}; write `'+{text}'` (quoted) to add the text key `'{text}'`",
                )
            )

    def _hint(self, base: dict, key: Any, here: tuple) -> str:
        """The base key meant: the same key of another type (`7` for `'7'`), a close spelling, or
        the same name at another level."""
        for other in base:
            if str(other) == str(key) and type(other) is not type(key):
                return f"; did you mean `{'.'.join((*here[:-1], key_text(other)))}`?"
        dotted = ".".join(here)
        return did_you_mean(dotted, self.candidates) or _same_leaf(here[-1], self.candidates)


def _plus(key: str) -> str:
    """`+key` as it must be written to read back as the text `+key`: `+0` is the number 0, `'+0'` is not."""
    text = f"+{key}"
    return text if _plain_tag(text) == _STR_TAG else "'" + text.replace("'", "''") + "'"


def _has_key(mapping: dict, key: Any) -> bool:
    """`key in mapping`, except that `1`, `1.0` and `True` are different keys (Python merges them)."""
    if key not in mapping:
        return False
    return isinstance(key, str) or any(k == key and type(k) is type(key) for k in mapping)


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


_KINDS = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an int", float: "a float"}


def kind(value: Any) -> str:
    """`an int`, `a list`, `null`: a value's type as a message says it."""
    return "null" if value is None else _KINDS.get(type(value), f"a {type(value).__name__}")


def _describe(value: Any) -> str:
    """`a boolean (true)`: the value spelled as YAML, as the user wrote it."""
    return kind(value) + ("" if isinstance(value, (dict, list)) else f" ({yaml_text(value)})")


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
    return _merger().merge(copy.deepcopy(base), copy.deepcopy(strip_plus(override)))


# --- flatten and diff -----------------------------------------------------------------


def flatten(data: dict, prefix: str = "", keep_branches: bool = False) -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}`; empty mappings stay as leaves; each key is written as
    `key_text` writes it, so `{1: x, "1": y}` gives two keys (`1` and `'1'`), not one."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key_text(key)}"
        if isinstance(value, dict) and value:
            if keep_branches:
                out[dotted] = value
            out.update(flatten(value, f"{dotted}.", keep_branches))
        else:
            out[dotted] = value
    return out


_STR_TAG = "tag:yaml.org,2002:str"


@functools.lru_cache(maxsize=4096, typed=True)
def key_text(key: Any) -> str:
    """One key as a part of a dotted key, as YAML would write it: text as is (`lr`), but quoted
    when YAML would read it as something else or it holds a dot (`'1'`, `'true'`, `'a.b'`);
    other keys as YAML writes them (`1`, `true`, `null`, `2020-01-01`)."""
    if not isinstance(key, str):
        return yaml_text(key)
    if key and key[0] != "'" and "." not in key and _plain_tag(key) == _STR_TAG:
        return key
    return "'" + key.replace("'", "''") + "'"


def _plain_tag(text: str) -> str:
    """The type YAML (our loader) gives `text` written as a plain scalar."""
    for tag, pattern in _Loader.yaml_implicit_resolvers.get(text[:1], ()):
        if pattern.match(text):
            return tag
    return _STR_TAG


_QUOTED = re.compile(r"'(?:[^']|'')*'")


def split_key(dotted: str) -> list[str]:
    """`a.'b.c'.'1'` → `["a", "b.c", "1"]`: a dotted key's parts as text, quotes removed."""
    parts, at = [], 0
    while True:
        if dotted.startswith("'", at):
            quoted = _QUOTED.match(dotted, at)
            end = quoted.end() if quoted else -1
            if end < 0 or not dotted.startswith(".", end) and end != len(dotted):
                raise ConfigError(f"`{dotted}`: a quoted part of a dotted key must be closed before the next dot")
            parts.append(quoted.group()[1:-1].replace("''", "'"))
        else:
            end = dotted.find(".", at)
            end = len(dotted) if end < 0 else end
            parts.append(dotted[at:end])
        if end == len(dotted):
            return parts
        at = end + 1


def unflatten(flat: dict[str, Any]) -> dict:
    """Dotted keys as nested mappings: the inverse of `flatten` for text keys; `a` and `a.b` together are an error."""
    out: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = split_key(dotted)
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
    lines = key_lines(text, [problem.path for problem in problems])
    return [
        f"{position(source, line, first_line)}: {label + ': ' if label else ''}{problem.message}"
        for problem, line in zip(problems, lines)
    ]


def override_hash(override: dict) -> str:
    """Same meaning, same hash: comments, indentation and key order do not count; types do."""
    canonical = json.dumps(_canonical(override), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    """`value` in a form `json.dumps(sort_keys=True)` takes, keeping each key's type: a mapping whose
    keys are not all plain text has every key tagged (`!int:7`, `!str:7`, `!NoneType:None`),
    so `{7: x}` and `{'7': x}` differ and mixed keys sort. Plain text keys stay as they are, so
    every override hashed before keeps its hash. Sets are sorted: their order changes per process."""
    if isinstance(value, dict):
        if all(isinstance(key, str) and not key.startswith("!") for key in value):
            return {key: _canonical(item) for key, item in value.items()}
        return {f"!{type(key).__name__}:{key}": _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return {"!set": sorted(json.dumps(_canonical(item), sort_keys=True, default=str) for item in value)}
    return value
