"""Properties of kagexp.config, checked with hypothesis on generated configs.

Configs are nested dicts with text keys and scalar or list leaves, as YAML gives them. Restrictions,
each because the property does not hold (or has no meaning) without it:

- keys do not start with `+`: in an override `+key` means "add `key`", and merge strips the `+`;
- floats are finite in the generated configs (NaN is not equal to itself); NaN has its own test;
- empty mappings are allowed everywhere: flatten keeps them as leaves.

"Equal" here means equal *with types*: YAML `1`, `1.0` and `true` are three different values of a
config key (Python says 1 == 1.0 == True), and kagexp's diff reports a type change as a change.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kagexp import config

quick = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.text(min_size=1, max_size=8).filter(lambda k: not k.startswith("+"))  # dots too: flatten quotes them
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
leaves = st.one_of(scalars, st.lists(scalars, max_size=4))
configs = st.recursive(
    st.dictionaries(keys, leaves, max_size=5),
    lambda children: st.dictionaries(keys, st.one_of(leaves, children), max_size=5),
    max_leaves=25,
)


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares types: 1, 1.0 and True differ; key order does not count."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# --- merge -------------------------------------------------------------------------------------


@quick
@given(configs)
def test_merging_nothing_gives_the_base(base):
    kept = copy.deepcopy(base)
    merged = config.merge(base, {})
    assert same(merged, base)
    assert same(base, kept), "merge modified its input"
    assert merged is not base


@quick
@given(configs)
def test_merging_a_config_with_itself_gives_itself(cfg):
    kept = copy.deepcopy(cfg)
    assert same(config.merge(cfg, cfg), kept)
    assert same(cfg, kept)


@quick
@given(configs, st.data())
def test_merge_takes_each_leaf_from_the_override_else_the_base(base, data):
    flat = config.flatten(base)
    chosen = data.draw(st.lists(st.sampled_from(sorted(flat)), unique=True) if flat else st.just([]))
    override_flat = {key: data.draw(leaves) for key in chosen}
    override = config.unflatten(override_flat)
    merged_flat = config.flatten(config.merge(base, override))
    expected = {**flat, **override_flat}
    assert merged_flat.keys() == expected.keys()
    assert all(same(merged_flat[k], expected[k]) for k in expected)


# --- flatten and unflatten --------------------------------------------------------------------


@quick
@given(configs)
def test_unflatten_undoes_flatten(cfg):
    flat = config.flatten(cfg)
    assert all(not isinstance(v, dict) or v == {} for v in flat.values()), "a non-empty mapping left as a leaf"
    assert same(config.unflatten(flat), cfg)


@quick
@given(configs)
def test_flatten_undoes_unflatten_on_flat_configs(cfg):
    flat = config.flatten(cfg)
    assert same(config.flatten(config.unflatten(flat)), flat)
    assert list(config.flatten(config.unflatten(flat))) == list(flat), "key order changed"


# --- diff ------------------------------------------------------------------------------------


def expected_changes(a: dict, b: dict) -> set[tuple[str, str]]:
    fa, fb = config.flatten(a), config.flatten(b)
    changes = {(k, "removed") for k in fa if k not in fb} | {(k, "added") for k in fb if k not in fa}
    return changes | {(k, "changed") for k in fa if k in fb and not same(fa[k], fb[k])}


@st.composite
def config_pairs(draw, values=leaves):
    """A config and a variant of it: some leaves changed (maybe to another type), some removed, some added."""
    a = draw(configs)
    flat = config.flatten(a)
    b_flat = dict(flat)
    for key in sorted(flat):
        action = draw(st.sampled_from(["keep", "keep", "change", "remove"]))
        if action == "change":
            b_flat[key] = draw(values)
        elif action == "remove":
            del b_flat[key]
    for key in draw(st.lists(keys, max_size=3)):
        b_flat.setdefault(f"added_{key}", draw(values))
    return a, config.unflatten(b_flat)


def check_diff(a: dict, b: dict) -> None:
    changes = config.diff(a, b)
    assert (changes == []) == same(a, b)
    assert {(c.key, c.kind) for c in changes} == expected_changes(a, b)
    assert len(changes) == len({c.key for c in changes}), "a key reported twice"
    fa, fb = config.flatten(a), config.flatten(b)
    for change in changes:
        if change.kind != "added":
            assert same(change.old, fa[change.key])
        if change.kind != "removed":
            assert same(change.new, fb[change.key])


@quick
@given(config_pairs(values=scalars))
@example(({"lr": 1}, {"lr": 1.0}))
@example(({"lr": 1}, {"lr": True}))
@example(({"lr": 0.0}, {"lr": False}))
@example(({"a": {"b": None}}, {"a": {"b": None}}))
def test_diff_of_scalars_is_empty_exactly_when_equal_and_names_each_changed_leaf(pair):
    check_diff(*pair)


@quick
@given(config_pairs())
@example(({"folds": [0, 1]}, {"folds": [False, True]}))
def test_diff_with_list_leaves_is_empty_exactly_when_equal(pair):
    check_diff(*pair)


@quick
@given(configs)
def test_diff_of_a_config_with_itself_or_a_copy_is_empty(cfg):
    assert config.diff(cfg, cfg) == []
    assert config.diff(cfg, copy.deepcopy(cfg)) == []


def test_diff_of_a_config_holding_nan_with_itself_is_empty():
    cfg = config.parse_mapping("lr: .nan\nmodel: {alpha: .nan}\n", "config.yml")
    assert math.isnan(cfg["lr"])
    assert config.diff(cfg, cfg) == []
    assert config.diff(cfg, config.parse_mapping("lr: .nan\nmodel: {alpha: .nan}\n", "config.yml")) == []


# --- the strict check -------------------------------------------------------------------------


def same_kind_values(value: Any) -> st.SearchStrategy:
    """Values that may replace `value` under strict types: its own type (int and float mix), or null."""
    if value is None:
        return leaves
    if isinstance(value, bool):
        kind = st.booleans()
    elif isinstance(value, (int, float)):
        kind = st.one_of(st.integers(), st.floats(allow_nan=False))
    elif isinstance(value, str):
        kind = st.text(max_size=10)
    elif isinstance(value, list):
        kind = st.lists(scalars, max_size=4)
    else:
        kind = st.just({})  # an empty mapping in the base: nothing to put in it but nothing
    return st.one_of(kind, st.none())


@st.composite
def base_and_valid_override(draw):
    """A base config and an override that sets some of its own leaves to values of the same kind
    (or null), and maybe adds new keys written `+key` under existing mappings."""
    base = draw(configs)
    flat = config.flatten(base)
    chosen = draw(st.lists(st.sampled_from(sorted(flat)), unique=True)) if flat else []
    override = config.unflatten({key: draw(same_kind_values(flat[key])) for key in chosen})
    branches = [k for k, v in config.flatten(base, keep_branches=True).items() if isinstance(v, dict)]
    for path in draw(st.lists(st.sampled_from(sorted(branches)), unique=True, max_size=2)) if branches else []:
        node, target = override, base
        for part in config.split_key(path):
            node, target = node.setdefault(part, {}), target[part]
            if not isinstance(node, dict):
                break
        else:
            new_key = draw(keys.filter(lambda k, t=target: k not in t))
            node[f"+{new_key}"] = draw(leaves)
    return base, override


@quick
@given(base_and_valid_override())
def test_strict_check_accepts_every_override_made_of_the_base_keys(pair):
    base, override = pair
    assert config.check_override(base, override) == []


@st.composite
def base_and_unknown_keys(draw):
    """A base config and an override naming 1-3 keys that the base lacks, each under an existing
    mapping (or at the top); returns the paths of those keys."""
    base = draw(configs)
    flat_all = config.flatten(base, keep_branches=True)
    mappings = [""] + sorted(k for k, v in flat_all.items() if isinstance(v, dict))
    override: dict = {}
    unknown = set()
    for _ in range(draw(st.integers(1, 3))):
        parent = draw(st.sampled_from(mappings))
        parts = config.split_key(parent) if parent else []
        target = base
        for part in parts:
            target = target[part]
        key = draw(keys.filter(lambda k, t=target: k not in t))
        node = override
        for part in parts:
            node = node.setdefault(part, {})
        node[key] = draw(leaves)
        unknown.add((*parts, key))
    return base, override, unknown


@quick
@given(base_and_unknown_keys())
def test_strict_check_rejects_every_key_not_in_the_base(case):
    base, override, unknown = case
    problems = config.check_override(base, override)
    assert {p.path for p in problems} == unknown, "every unknown key, and only those, is reported"
    for problem in problems:
        assert "unknown key `" + ".".join(map(config.key_text, problem.path)) + "`" in problem.message
        assert "+" + problem.path[-1] in problem.message, "the message says how to add the key on purpose"
    assert config.check_override(base, override, strict_keys=False) == []
