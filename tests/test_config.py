import pytest

from kagexp import config
from kagexp.config import Config
from kagexp.errors import ConfigError

BASE = {"seed": 1, "lr": 0.1, "model": {"params": {"max_depth": 1, "min_samples_leaf": 1}}, "tags": ["a", "b"]}


def test_yaml_12_floats():
    data = config.parse_yaml("a: 1e-3\nb: 1.0e-3\nc: -2E+5\nd: .5\ne: 3\nf: '1e-3'\n", "t.yml")
    assert data == {"a": 0.001, "b": 0.001, "c": -200000.0, "d": 0.5, "e": 3, "f": "1e-3"}
    assert type(data["a"]) is float and type(data["e"]) is int


def test_duplicate_key_is_an_error_with_line():
    with pytest.raises(ConfigError, match=r"^t.yml:3: invalid YAML: found duplicate key 'a'$"):
        config.parse_yaml("a: 1\nb: 2\na: 3\n", "t.yml")


def test_duplicate_nested_key_and_merge_keys():
    with pytest.raises(ConfigError, match="t.yml:4: .*duplicate key 'x'"):
        config.parse_yaml("m:\n  x: 1\n  y: 2\n  x: 3\n", "t.yml")
    merged = config.parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 5\n", "t.yml")
    assert merged["other"] == {"x": 5, "y": 2}


def test_line_numbers_are_offset():
    with pytest.raises(ConfigError, match=r"^exp.py:12: invalid YAML"):
        config.parse_yaml("a: 1\n\tb: 2\n", "exp.py", first_line=11)


def test_unsafe_tags_are_refused():
    with pytest.raises(ConfigError, match="t.yml:1"):
        config.parse_yaml("a: !!python/object/apply:os.system ['true']\n", "t.yml")


def test_top_level_must_be_mapping():
    with pytest.raises(ConfigError, match="expected a mapping .* found a list"):
        config.parse_mapping("- 1\n- 2\n", "c.yml")
    assert config.parse_mapping("# only a comment\n", "c.yml") == {}


def test_merge_replaces_lists_and_scalars_and_never_mutates():
    override = {"model": {"params": {"max_depth": 3}}, "tags": ["c"]}
    merged = config.merge(BASE, override)
    assert merged == {"seed": 1, "lr": 0.1, "model": {"params": {"max_depth": 3, "min_samples_leaf": 1}}, "tags": ["c"]}
    assert BASE["model"]["params"]["max_depth"] == 1 and BASE["tags"] == ["a", "b"]
    assert override == {"model": {"params": {"max_depth": 3}}, "tags": ["c"]}
    merged["tags"].append("x")
    assert override["tags"] == ["c"]


def test_empty_override_is_the_base():
    assert config.merge(BASE, {}) == BASE


def test_typo_key_gets_a_suggestion():
    problems = config.check_override(BASE, {"model": {"params": {"max_dpeth": 3}}})
    assert [p.message for p in problems] == [
        "unknown key `model.params.max_dpeth`; did you mean `model.params.max_depth`? "
        "Write `+max_dpeth` to add a new key."
    ]
    assert problems[0].path == ("model", "params", "max_dpeth")


def test_key_at_the_wrong_level_is_pointed_to():
    (problem,) = config.check_override(BASE, {"max_depth": 3})
    assert "did you mean `model.params.max_depth`?" in problem.message


def test_every_bad_key_is_reported():
    problems = config.check_override(BASE, {"sed": 1, "model": {"parms": {}, "params": {"depth": 2}}, "zzz": 1})
    assert [".".join(p.path) for p in problems] == ["sed", "model.parms", "model.params.depth", "zzz"]
    assert problems[-1].message == "unknown key `zzz`; write `+zzz` to add a new key"


def test_plus_adds_a_key_on_purpose():
    override = {"model": {"+dropout": 0.5, "params": {"+new": {"deep": [1]}}}}
    assert config.check_override(BASE, override) == []
    merged = config.merge(BASE, override)
    assert merged["model"]["dropout"] == 0.5 and merged["model"]["params"]["new"] == {"deep": [1]}
    (problem,) = config.check_override(BASE, {"+seed": 2})
    assert problem.message == "`+seed` adds a key, but `seed` already exists; write `seed` to change it"


@pytest.mark.parametrize(
    "override, ok",
    [
        ({"seed": 2.5}, True),
        ({"lr": 1}, True),
        ({"lr": None}, True),
        ({"lr": "fast"}, False),
        ({"seed": True}, False),
        ({"tags": "a"}, False),
        ({"model": 3}, False),
        ({"model": {"params": {"max_depth": [1]}}}, False),
    ],
)
def test_type_changes(override, ok):
    problems = config.check_override(BASE, override)
    assert (problems == []) is ok
    if not ok:
        assert "here but" in problems[0].message


@pytest.mark.parametrize(
    "override, wording",
    [
        ({"seed": True}, "`seed` is a boolean (true) here but an int (1)"),
        ({"lr": "fast"}, "`lr` is a string (fast) here but a float (0.1)"),
        ({"seed": "3"}, "`seed` is a string ('3') here but an int (1)"),
    ],
)
def test_type_errors_spell_values_as_yaml(override, wording):
    (problem,) = config.check_override(BASE, override)
    assert problem.message.startswith(wording), problem.message


def test_relaxed_checks():
    assert config.check_override(BASE, {"nope": 1, "lr": "x"}, strict_keys=False, strict_types=False) == []


def test_locate_points_at_the_key_line():
    text = "model:\n  params:\n    max_dpeth: 3\n"
    problems = config.check_override(BASE, config.parse_mapping(text, "x"))
    (line,) = config.locate(problems, text, "exp/exp001/exp.py", first_line=10, label="exp001/run002")
    assert line.startswith("exp/exp001/exp.py:12: exp001/run002: unknown key `model.params.max_dpeth`")


def test_config_attribute_access():
    cfg = Config(BASE | {"augs": [{"name": "flip"}]})
    assert cfg.model.params.max_depth == 1
    assert cfg.augs[0].name == "flip"
    assert cfg.get("missing", 5) == 5
    assert isinstance(cfg, dict) and cfg["model"]["params"] == {"max_depth": 1, "min_samples_leaf": 1}
    with pytest.raises(AttributeError, match="did you mean `model`"):
        _ = cfg.modl
    assert type(cfg.to_dict()["model"]) is dict
    assert config.parse_yaml(config.dump_yaml(cfg), "x") == cfg


def test_flatten_unflatten_and_diff():
    flat = config.flatten(BASE)
    assert flat["model.params.max_depth"] == 1 and flat["tags"] == ["a", "b"]
    assert config.unflatten(flat) == BASE
    new = config.merge(BASE, {"lr": 0.2, "+extra": 1, "model": {"params": {"max_depth": 1.0}}})
    del new["seed"]
    changes = {c.key: (c.kind, c.old, c.new) for c in config.diff(BASE, new)}
    assert changes == {
        "seed": ("removed", 1, None),
        "lr": ("changed", 0.1, 0.2),
        "model.params.max_depth": ("changed", 1, 1.0),
        "extra": ("added", None, 1),
    }
    assert config.diff(BASE, config.merge(BASE, {})) == []
