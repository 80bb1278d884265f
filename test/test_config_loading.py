"""Tests for drl_ros.core.config_loading: strict, typed config dataclasses from YAML."""

from __future__ import annotations  # the loader must resolve string annotations

import dataclasses
import enum
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import yaml

from drl_ros.core.config_loading import (
    ConfigError,
    config_to_dict,
    dump_config_yaml,
    field_docs,
    load_config,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True)
class SACConfig:
    learning_rate: float = 3e-4
    """Adam step size."""
    batch_size: int = 256
    """Minibatch size
    (transitions per gradient step)."""
    gamma: float = 0.99
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths."""

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")


@dataclass(frozen=True)
class EnvConfig:
    name: str
    """Gymnasium-style env id."""
    num_envs: int = 1
    render: bool = False
    goal: tuple[float, float] = (0.0, 0.0)
    mode: Literal["sim", "real"] = "sim"
    color: Color = Color.RED
    level: Level = Level.LOW


@dataclass(frozen=True)
class TrainConfig:
    env: EnvConfig
    sac: SACConfig = field(default_factory=SACConfig)
    """Soft actor-critic hyper-parameters."""
    seed: Optional[int] = None  # noqa: UP045 - the typing.Optional spelling is under test
    device: str | None = None
    tags: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    anything: Any = None
    log_dir: Path = Path("runs")
    warm: SACConfig | None = None
    size: int | str = 0
    computed: int = field(default=0, init=False)


@dataclass
class Base:
    a: int = 1
    """Doc of a in Base."""
    b: int = 2
    """Doc of b in Base."""


@dataclass
class Derived(Base):
    b: int = 3
    """Doc of b in Derived."""
    c: int = field(default=4, metadata={"doc": "Doc of c from metadata."})
    d: int = 5


def _write(tmp_path: Path, text: str, name: str = "reach.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = {"env": {"name": "reach"}}


# ---------------------------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------------------------


def test_load_full_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        env:
          name: reach
          num_envs: 4
          render: true
          goal: [0.5, -1]
          mode: real
          color: green
          level: 2
        sac:
          learning_rate: 3e-4        # YAML 1.1 reads this as the string '3e-4'
          batch_size: 1e3            # also a string; integral, so accepted for an int
          hidden: [64, 64]
        seed: 7
        tags: [a, b]
        weights: {x: 1, y: 2.5}
        extra: {k: [1, 2], nested: {z: null}}
        anything: [1, "two"]
        log_dir: /tmp/runs
        warm: {gamma: 0.5}
        size: big
    """)
    assert yaml.safe_load(path.read_text())["sac"]["learning_rate"] == "3e-4"  # the premise
    cfg = load_config(TrainConfig, path)
    assert cfg.env == EnvConfig(name="reach", num_envs=4, render=True, goal=(0.5, -1.0),
                                mode="real", color=Color.GREEN, level=Level.HIGH)
    assert cfg.sac.learning_rate == pytest.approx(3e-4) and type(cfg.sac.learning_rate) is float
    assert cfg.sac.batch_size == 1000 and type(cfg.sac.batch_size) is int
    assert cfg.sac.hidden == (64, 64)
    assert cfg.seed == 7 and cfg.device is None
    assert cfg.tags == ["a", "b"]
    assert cfg.weights == {"x": 1.0, "y": 2.5} and type(cfg.weights["x"]) is float
    assert cfg.extra == {"k": [1, 2], "nested": {"z": None}}
    assert cfg.anything == [1, "two"]
    assert cfg.log_dir == Path("/tmp/runs")
    assert cfg.warm == SACConfig(gamma=0.5)
    assert cfg.size == "big"


def test_defaults_and_empty_sources(tmp_path: Path) -> None:
    cfg = load_config(TrainConfig, MINIMAL)
    assert cfg.sac == SACConfig() and cfg.tags == [] and cfg.warm is None
    empty = _write(tmp_path, "# nothing\n", "empty.yaml")
    assert load_config(SACConfig, empty) == SACConfig()
    assert load_config(SACConfig, None) == SACConfig()
    # An empty section means "all defaults" too.
    assert load_config(TrainConfig, {"env": {"name": "x"}, "sac": None}).sac == SACConfig()


def test_enum_by_name_and_int_enum() -> None:
    cfg = load_config(EnvConfig, {"name": "x", "color": "GREEN", "level": "HIGH"})
    assert cfg.color is Color.GREEN and cfg.level is Level.HIGH


def test_union_arms_in_declaration_order() -> None:
    assert load_config(TrainConfig, {**MINIMAL, "size": 3}).size == 3
    assert load_config(TrainConfig, {**MINIMAL, "size": "3"}).size == 3  # int arm first
    assert load_config(TrainConfig, {**MINIMAL, "size": "large"}).size == "large"
    with pytest.raises(ConfigError, match=r"size: expected int \| str, got \[1\] \(list\)"):
        load_config(TrainConfig, {**MINIMAL, "size": [1]})


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_unknown_key_names_file_path_and_suggests(tmp_path: Path) -> None:
    path = _write(tmp_path, """
        env: {name: reach}
        sac:
          lerning_rate: 0.1
    """)
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, path)
    message = str(info.value)
    assert message.startswith(f"{path}: sac.lerning_rate: unknown field of SACConfig")
    assert "did you mean 'learning_rate'?" in message
    assert "Valid fields: batch_size, gamma, hidden, learning_rate" in message


def test_unknown_key_without_close_match_and_init_false_field() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, {**MINIMAL, "zzzzzz": 1})
    assert "did you mean" not in str(info.value)
    assert str(info.value).startswith("zzzzzz: unknown field of TrainConfig")
    with pytest.raises(ConfigError, match="computed: unknown field"):
        load_config(TrainConfig, {**MINIMAL, "computed": 1})


def test_missing_required_fields() -> None:
    with pytest.raises(ConfigError, match=r"^env: missing required field"):
        load_config(TrainConfig, {})
    with pytest.raises(ConfigError, match=r"^env\.name: missing required field"):
        load_config(TrainConfig, {"env": {"num_envs": 2}})

    @dataclass
    class Two:
        x: int
        y: int

    with pytest.raises(ConfigError, match=r"missing required fields of Two: x, y"):
        load_config(Two, {})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sac": {"learning_rate": "fast"}}, "sac.learning_rate: expected a float, got 'fast' (str)"),
        ({"sac": {"learning_rate": True}}, "sac.learning_rate: expected a float, got True (bool)"),
        ({"sac": {"batch_size": 2.5}}, "sac.batch_size: expected an int, got 2.5 (float)"),
        ({"sac": {"batch_size": True}}, "sac.batch_size: expected an int, got True (bool)"),
        ({"sac": {"batch_size": "1e-3"}}, "sac.batch_size: expected an int"),
        ({"sac": {"batch_size": float("inf")}}, "sac.batch_size: expected an int"),
        ({"env": {"name": "x", "render": 1}}, "env.render: expected a bool (true/false), got 1"),
        ({"env": {"name": 5}}, "env.name: expected a str (quote it in YAML), got 5 (int)"),
        ({"env": {"name": "x", "mode": "hybrid"}},
         "env.mode: expected one of 'sim', 'real', got 'hybrid' (str)"),
        ({"env": {"name": "x", "color": "blue"}},
         "env.color: expected a Color value (one of 'red', 'green'), got 'blue'"),
        ({"env": {"name": "x", "level": True}}, "env.level: expected a Level value"),
        ({"env": {"name": "x", "goal": [1.0]}}, "env.goal: expected a list of 2 items"),
        ({"env": {"name": "x", "goal": [1.0, "up"]}}, "env.goal[1]: expected a float, got 'up'"),
        ({"env": {"name": "x", "goal": "origin"}}, "env.goal: expected a list, got 'origin'"),
        ({"env": {"name": "x"}, "sac": {"hidden": [64, "wide"]}},
         "sac.hidden[1]: expected an int, got 'wide' (str)"),
        ({"env": {"name": "x"}, "tags": ["a", 1]}, "tags[1]: expected a str"),
        ({"env": {"name": "x"}, "weights": {"x": "heavy"}}, "weights.x: expected a float"),
        ({"env": {"name": "x"}, "weights": {1: 2.0}}, "weights[1]: expected a str"),
        ({"env": {"name": "x"}, "weights": [1]}, "weights: expected a mapping, got [1]"),
        ({"env": {"name": "x"}, "seed": "seven"}, "seed: expected an int, got 'seven'"),
        ({"env": {"name": "x"}, "log_dir": 3}, "log_dir: expected a path string"),
        ({"env": "reach"}, "env: expected a mapping for EnvConfig, got 'reach' (str)"),
        ({"env": {"name": "x"}, "warm": {"gamma": "high"}}, "warm.gamma: expected a float"),
    ],
)
def test_type_errors(data: dict[str, Any], expected: str) -> None:
    data = {"env": {"name": "x"}, **data}
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, data, source_name="config/reach.yaml")
    assert str(info.value).startswith(f"config/reach.yaml: {expected}"), str(info.value)


def test_type_error_message_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "env: {name: reach}\nsac: {learning_rate: fast}\n")
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, path)
    assert str(info.value) == f"{path}: sac.learning_rate: expected a float, got 'fast' (str)"


def test_post_init_errors_get_the_dataclass_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "env: {name: reach}\nsac: {gamma: 1.5}\n")
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, path)
    assert str(info.value) == f"{path}: sac: gamma must be in (0, 1], got 1.5"
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(ConfigError, match=r"^gamma must be in"):
        load_config(SACConfig, {"gamma": 0})  # top level: no path prefix


def test_yaml_problems(tmp_path: Path) -> None:
    dup = _write(tmp_path, "env: {name: a}\nseed: 1\nseed: 2\n", "dup.yaml")
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(TrainConfig, dup)
    bad = _write(tmp_path, "env: [unclosed\n", "bad.yaml")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(TrainConfig, bad)
    top_list = _write(tmp_path, "- 1\n- 2\n", "list.yaml")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping for TrainConfig"):
        load_config(TrainConfig, top_list)
    evil = _write(tmp_path, "env: !!python/object/apply:os.system ['true']\n", "evil.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(TrainConfig, evil)
    # Merge keys may repeat keys legitimately.
    merged = _write(tmp_path, """
        base: &b {learning_rate: 0.1, batch_size: 8}
        sac:
          <<: *b
          batch_size: 16
    """, "merge.yaml")
    data = yaml.safe_load(merged.read_text())
    data.pop("base")
    assert load_config(TrainConfig, {**MINIMAL, **data}).sac.batch_size == 16
    from drl_ros.core.config_loading import load_yaml

    assert load_yaml(merged.read_text())["sac"] == {"learning_rate": 0.1, "batch_size": 16}


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def test_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, "env: {name: reach, num_envs: 2}\nsac: {batch_size: 64}\n")
    cfg = load_config(
        TrainConfig, path,
        overrides=["sac.learning_rate=1e-3", "env.num_envs=4", "tags=[x, y]", "seed=null",
                   "env.goal=[1, 2]", "weights.arm=0.5", "extra.deep.er=1", "warm.gamma=0.9",
                   "env.color=GREEN"],
    )
    assert cfg.sac.learning_rate == pytest.approx(1e-3)
    assert cfg.sac.batch_size == 64  # untouched sibling of an overridden field
    assert cfg.env.num_envs == 4 and cfg.env.name == "reach"
    assert cfg.tags == ["x", "y"] and cfg.seed is None and cfg.env.goal == (1.0, 2.0)
    assert cfg.weights == {"arm": 0.5} and cfg.extra == {"deep": {"er": 1}}
    assert cfg.warm == SACConfig(gamma=0.9) and cfg.env.color is Color.GREEN


def test_override_keeps_non_default_factory_values() -> None:
    @dataclass
    class Outer:
        sac: SACConfig = field(default_factory=lambda: SACConfig(batch_size=32))

    assert load_config(Outer, {}, overrides=["sac.gamma=0.5"]).sac == SACConfig(
        batch_size=32, gamma=0.5)


def test_overrides_do_not_mutate_the_source() -> None:
    source = {"env": {"name": "reach"}}
    load_config(TrainConfig, source, overrides=["env.num_envs=3"])
    assert source == {"env": {"name": "reach"}}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("sac.lerning_rate=1", ("override 'sac.lerning_rate=1': sac.lerning_rate: unknown "
                                "field of SACConfig; did you mean 'learning_rate'?")),
        ("sca.gamma=1", ("override 'sca.gamma=1': sca: unknown field of TrainConfig; "
                         "did you mean 'sac'?")),
        ("sac.learning_rate=fast",
         "override 'sac.learning_rate=fast': sac.learning_rate: expected a float, got 'fast'"),
        ("env.num_envs=2.5", "override 'env.num_envs=2.5': env.num_envs: expected an int"),
        ("sac.gamma.x=1", "override 'sac.gamma.x=1': sac.gamma: cannot set 'x' inside a float"),
        ("seed", "override 'seed': expected 'dotted.field.path=value'"),
        ("sac..gamma=1", "override 'sac..gamma=1': expected 'dotted.field.path=value'"),
        ("tags.x=1", "override 'tags.x=1': tags: cannot set 'x' inside a list[str]"),
        ("tags=[unclosed", "override 'tags=[unclosed': invalid YAML"),
    ],
)
def test_override_errors(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, MINIMAL, overrides=[override])
    assert str(info.value).startswith(expected), str(info.value)


def test_override_into_any_field() -> None:
    assert load_config(TrainConfig, MINIMAL, overrides=["anything.x=1"]).anything == {"x": 1}
    with pytest.raises(ConfigError, match=r"anything: cannot set 'x' inside 5 \(int\)"):
        load_config(TrainConfig, {**MINIMAL, "anything": 5}, overrides=["anything.x=1"])


def test_override_post_init_error() -> None:
    with pytest.raises(ConfigError, match=r"^sac: gamma must be in"):
        load_config(TrainConfig, MINIMAL, overrides=["sac.gamma=2"])


# ---------------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------------


def _sample() -> TrainConfig:
    return TrainConfig(
        env=EnvConfig(name="reach", num_envs=3, goal=(0.25, 1e-10), mode="real",
                      color=Color.GREEN, level=Level.HIGH),
        sac=SACConfig(learning_rate=3e-4, hidden=(32,)),
        seed=3, tags=["t"], weights={"a": 2.0}, extra={"k": [1, {"x": None}]},
        anything={"free": "form"}, log_dir=Path("/data/runs"), warm=SACConfig(gamma=0.5),
        size="3e-4",
    )


def test_config_to_dict_is_plain_and_round_trips() -> None:
    cfg = _sample()
    plain = config_to_dict(cfg)
    assert json.loads(json.dumps(plain)) == plain  # JSON-serializable
    assert plain["env"]["goal"] == [0.25, 1e-10] and plain["env"]["color"] == "green"
    assert plain["env"]["level"] == 2 and plain["log_dir"] == "/data/runs"
    assert "computed" not in plain
    assert load_config(TrainConfig, plain) == cfg


def test_dump_yaml_round_trip(tmp_path: Path) -> None:
    cfg = _sample()
    path = dump_config_yaml(cfg, tmp_path / "dumped.yaml")
    assert load_config(TrainConfig, path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["dumped.yaml"]  # no temp file left


def test_config_to_dict_rejects_non_dataclasses() -> None:
    with pytest.raises(TypeError):
        config_to_dict({"a": 1})
    with pytest.raises(TypeError):
        config_to_dict(TrainConfig)

    @dataclass
    class Weird:
        thing: Any = dataclasses.field(default_factory=object)

    with pytest.raises(TypeError, match="thing: cannot serialize"):
        config_to_dict(Weird())


def test_load_config_rejects_non_dataclass() -> None:
    with pytest.raises(TypeError):
        load_config(dict, {})  # type: ignore[type-var]


# ---------------------------------------------------------------------------------------------
# Field docs
# ---------------------------------------------------------------------------------------------


def test_field_docs() -> None:
    assert field_docs(SACConfig) == {
        "learning_rate": "Adam step size.",
        "batch_size": "Minibatch size\n(transitions per gradient step).",
        "hidden": "Hidden layer widths.",
    }
    assert field_docs(Derived) == {
        "a": "Doc of a in Base.",
        "b": "Doc of b in Derived.",
        "c": "Doc of c from metadata.",
    }
    nested = field_docs(TrainConfig, recursive=True)
    assert nested["sac"] == "Soft actor-critic hyper-parameters."
    assert nested["sac.learning_rate"] == "Adam step size."
    assert nested["env.name"] == "Gymnasium-style env id."
    assert nested["warm.hidden"] == "Hidden layer widths."
    assert "seed" not in nested
    assert field_docs(TrainConfig)["sac"] == "Soft actor-critic hyper-parameters."
    assert "sac.learning_rate" not in field_docs(TrainConfig)
