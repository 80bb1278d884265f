"""ONNX export and the torch-free policy runtime: equal outputs for every actor kind, the contract,
tamper refusal, running with torch unimportable, and ``drl-ros export`` on a trained run."""

import ast
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from drl_ros.core import actors
from drl_ros.core.config import EnvConfig, TrainConfig
from drl_ros.core.config_loading import load_config
from drl_ros.core.export import export_onnx, verification_observations
from drl_ros.core.onnx_policy import CONTRACT_FILE, ONNX_FILE, ContractError, OnnxPolicy
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec, DiscreteSpec
from drl_ros.runtime.cli import main as cli_main
from drl_ros.runtime.export import env_policy_contract
from drl_ros.runtime.trainer import Trainer

OBS_SPEC = BoxSpec(tuple([-4.0] * 5 + [-np.inf]), tuple([4.0] * 5 + [np.inf]))
BOX_ACTION = BoxSpec((-2.0, 0.0, -1.0), (2.0, 1.0, 1.0))
N_DISCRETE = 5


def _actor_kinds() -> list[str]:
    """Every actor kind defined in drl_ros.core (subclasses of Actor), so new kinds are tested too."""
    try:  # the Q-value actor lives in its own module, imported lazily by build_actor
        import drl_ros.core.q_networks  # noqa: F401
    except ImportError:
        pass
    found, stack = set(), [actors.Actor]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("drl_ros.core.") and getattr(cls, "kind", "actor") != "actor":
            found.add(cls.kind)
    return sorted(found)


def _cases() -> list[tuple[str, dict]]:
    cases = [(kind, {}) for kind in _actor_kinds()]
    if "q_value" in dict(cases):
        # Every return distribution of the Q-value actor builds a different graph.
        cases += [("q_value", {"distribution": d, "dueling": dueling})
                  for d in ("expected", "categorical", "quantile", "implicit") for dueling in (False, True)]
    return cases


def _policy(kind: str, actor_kwargs: dict | None = None, seed: int = 0, normalize: bool = True) -> Policy:
    """A policy of ``kind`` with non-trivial weights and normalizer statistics; Box actions unless
    the actor's deterministic output is an integer index."""
    torch.manual_seed(seed)
    kwargs = {"hidden_sizes": [32, 32], "activation": "tanh", "normalize_observations": normalize,
              "actor_kwargs": actor_kwargs or None}
    policy = Policy.create(OBS_SPEC, BOX_ACTION, kind, **kwargs)
    if not policy(torch.zeros(2, OBS_SPEC.dim)).dtype.is_floating_point:
        torch.manual_seed(seed)
        policy = Policy.create(OBS_SPEC, DiscreteSpec(N_DISCRETE), kind, **kwargs)
        # Initial output layers are tiny (and IQN's quantile mean flattens them further), so a fresh
        # network picks nearly one action everywhere; larger weights make the argmax vary.
        with torch.no_grad():
            for parameter in policy.actor.parameters():
                parameter.normal_(0.0, 0.5)
    if policy.normalizer is not None:
        policy.normalizer.update(np.random.default_rng(seed).normal([1, -2, 0, 3, 0.5, 10], [2, 1, 3, 0.1, 1, 50],
                                                                    size=(500, OBS_SPEC.dim)))
    policy.version = 7
    return policy.eval()


def test_every_actor_kind_defined_in_core_is_covered():
    kinds = _actor_kinds()
    assert {"squashed_gaussian", "gaussian", "categorical"} <= set(kinds)


@pytest.mark.parametrize("kind,actor_kwargs", _cases(),
                         ids=[k + "".join(f"-{v}" for v in kw.values()) for k, kw in _cases()])
def test_torch_and_onnxruntime_agree_for_every_actor_kind(tmp_path, kind, actor_kwargs):
    policy = _policy(kind, actor_kwargs)
    result = export_onnx(policy, tmp_path)
    runtime = OnnxPolicy.load(tmp_path)
    obs = verification_observations(policy, 256, seed=1)
    with torch.no_grad():
        expected = policy(torch.from_numpy(obs)).numpy()
    actual = runtime.normalized_action(obs)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    expected_env = policy.act(obs, deterministic=True).env_action
    single = np.stack([runtime.act(o) for o in obs[:32]])
    if policy.discrete:
        # Equality of argmaxes only means something if the observations pick different actions.
        assert len(np.unique(expected)) > 1
        np.testing.assert_array_equal(actual, expected)
        np.testing.assert_array_equal(runtime.act(obs), expected_env)
        np.testing.assert_array_equal(single, expected_env[:32])
        assert single.dtype == np.int64
    else:
        assert np.max(np.abs(actual - expected)) <= 1e-5
        assert result.max_abs_diff <= 1e-5
        np.testing.assert_allclose(runtime.act(obs), expected_env, rtol=0, atol=1e-5)
        np.testing.assert_allclose(single, expected_env[:32], rtol=0, atol=1e-5)
        assert single.dtype == np.float32 and single.shape == (32, BOX_ACTION.dim)


def test_contract_records_what_a_robot_computer_needs(tmp_path):
    policy = _policy("squashed_gaussian")
    env_contract = {"observation_terms": [{"name": "joints", "start": 0, "stop": 4},
                                          {"name": "target", "start": 4, "stop": 6}],
                    "joint_map": {"joints": ["a", "b", "c"], "control": "joint_delta"}, "control_rate_hz": 48}
    export_onnx(policy, tmp_path, env_contract=env_contract, source={"env_id": "test"})
    contract = json.loads((tmp_path / CONTRACT_FILE).read_text())
    assert contract["format"] == "drl_ros.policy_contract" and contract["format_version"] == 1
    assert contract["policy_version"] == 7
    assert contract["onnx"]["sha256"] == hashlib.sha256((tmp_path / ONNX_FILE).read_bytes()).hexdigest()
    assert contract["onnx"]["input"] == {"name": "obs", "dtype": "float32", "shape": ["batch", 6]}
    assert contract["onnx"]["max_abs_diff_vs_torch"] <= 1e-5
    assert contract["observation"]["terms"] == env_contract["observation_terms"]
    assert contract["observation"]["high"][-1] == "inf"
    assert contract["joint_map"] == env_contract["joint_map"] and contract["control_rate_hz"] == 48.0
    assert contract["source"] == {"env_id": "test"}
    action = contract["action"]
    assert action["kind"] == "box" and action["clip"] == [-1.0, 1.0]
    np.testing.assert_array_equal(np.float32(action["scale"]), policy._scale)
    np.testing.assert_array_equal(np.float32(action["offset"]), policy._offset)
    normalization = contract["normalization"]
    assert normalization["in_graph"] is True
    np.testing.assert_array_equal(normalization["mean"], policy.normalizer.mean.numpy())
    assert contract["actor"]["actor"] == "squashed_gaussian"

    runtime = OnnxPolicy.load(tmp_path / CONTRACT_FILE)
    assert runtime.version == 7 and runtime.control_rate_hz == 48.0 and runtime.joint_map["joints"] == ["a", "b", "c"]
    assert [t["name"] for t in runtime.observation_terms] == ["joints", "target"]


def test_env_without_declarations_gets_nulls_and_bad_terms_are_refused(tmp_path):
    policy = _policy("gaussian", normalize=False)
    contract = export_onnx(policy, tmp_path / "plain").contract
    assert contract["observation"]["terms"] is None and contract["joint_map"] is None
    assert contract["control_rate_hz"] is None and contract["normalization"] is None
    with pytest.raises(ValueError, match="observation terms cover"):
        export_onnx(policy, tmp_path / "bad", env_contract={"observation_terms": [{"name": "x", "start": 0, "stop": 4}]})


def test_tampered_onnx_file_is_refused(tmp_path):
    export_onnx(_policy("gaussian"), tmp_path)
    onnx_path = tmp_path / ONNX_FILE
    data = bytearray(onnx_path.read_bytes())
    # Change one weight byte near the end (initializers are stored after the graph nodes).
    data[-40] ^= 0x01
    onnx_path.write_bytes(bytes(data))
    with pytest.raises(ContractError, match="sha256 mismatch"):
        OnnxPolicy.load(tmp_path)


def test_contract_may_only_name_a_file_beside_it_and_must_exist(tmp_path):
    export_onnx(_policy("gaussian"), tmp_path)
    contract_path = tmp_path / CONTRACT_FILE
    contract = json.loads(contract_path.read_text())
    contract["onnx"]["file"] = "../elsewhere.onnx"
    contract_path.write_text(json.dumps(contract))
    with pytest.raises(ContractError, match="beside the contract"):
        OnnxPolicy.load(tmp_path)
    with pytest.raises(ContractError, match="no policy contract"):
        OnnxPolicy.load(tmp_path / "missing")


def test_runtime_module_imports_only_numpy_onnxruntime_and_the_standard_library():
    import drl_ros.core.onnx_policy as module

    allowed = {"numpy", "onnxruntime", "__future__"} | set(sys.stdlib_module_names)
    imported = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, "relative imports would pull in drl_ros modules"
            imported.add(node.module.split(".")[0])
    assert imported <= allowed, imported - allowed
    # The package __init__ files on the way must hold no imports either.
    for init in (Path(module.__file__).parent / "__init__.py", Path(module.__file__).parent.parent / "__init__.py"):
        assert not [n for n in ast.walk(ast.parse(init.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))]


_NO_TORCH_SCRIPT = textwrap.dedent("""
    import sys

    class _NoTorch:
        # Raises on any attempt to import torch, as on a robot computer without it.
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is not installed here ({name})")
            return None

    sys.meta_path.insert(0, _NoTorch())
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("the torch blocker does not work")

    import numpy as np
    from drl_ros.core.onnx_policy import OnnxPolicy

    export_dir, obs_file, out_file = sys.argv[1:4]
    policy = OnnxPolicy.load(export_dir)
    obs = np.load(obs_file)
    np.save(out_file, np.stack([policy.act(o) for o in obs]))
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch")
    assert not loaded, loaded
    print("acted without torch:", policy.version)
""")


@pytest.mark.parametrize("kind", ["squashed_gaussian", "categorical"])
def test_runtime_acts_with_torch_unimportable(tmp_path, kind):
    policy = _policy(kind)
    export_onnx(policy, tmp_path / "export")
    obs = verification_observations(policy, 16, seed=2)
    np.save(tmp_path / "obs.npy", obs)
    script = tmp_path / "no_torch.py"
    script.write_text(_NO_TORCH_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "export"), str(tmp_path / "obs.npy"),
                           str(tmp_path / "out.npy")], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "acted without torch: 7" in done.stdout
    expected = policy.act(obs, deterministic=True).env_action
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=0, atol=1e-5)


def test_cli_exports_a_trained_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = load_config(TrainConfig, {
        "algorithm": "sac", "total_steps": 300, "seed": 0, "run_dir": str(run_dir), "env": {"id": "Pendulum-v1"},
        "sac": {"learning_starts": 100, "buffer_size": 1000, "hidden_sizes": [32, 32], "batch_size": 32},
        "eval": {"every_steps": 0, "episodes": 1}, "checkpoint_every_steps": 0, "log_every_steps": 100,
    })
    with Trainer(config, run_dir, progress=False) as trainer:
        trainer.train()
    capsys.readouterr()
    assert cli_main(["export", str(run_dir), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "policy_contract.json" in out and "policy.onnx" in out
    contract = json.loads((run_dir / "export" / CONTRACT_FILE).read_text())
    assert contract["source"]["env_id"] == "Pendulum-v1" and contract["source"]["steps"] == 300
    assert contract["control_rate_hz"] == pytest.approx(20.0)  # Pendulum's dt is 0.05 s
    assert contract["observation"]["terms"] is None and contract["joint_map"] is None

    policy = Policy.load(run_dir / "policy")
    runtime = OnnxPolicy.load(run_dir / "export")
    obs = verification_observations(policy, 64, seed=3)
    np.testing.assert_allclose(runtime.act(obs), policy.act(obs, deterministic=True).env_action, rtol=0, atol=1e-5)
    assert cli_main(["export", str(tmp_path / "missing")]) == 2


def test_kuka_reach_declares_terms_joint_map_and_control_rate(tmp_path):
    pytest.importorskip("pybullet")
    import gymnasium as gym

    import drl_ros.envs  # noqa: F401  (registers the drl_ros/ ids)
    from drl_ros.core.spaces import space_spec

    env = gym.make("drl_ros/KukaReachJoint-v0")
    try:
        declared = env.unwrapped.policy_contract()
        obs_spec, act_spec = space_spec(env.observation_space), space_spec(env.action_space)
    finally:
        env.close()
    assert [(t["name"], t["start"], t["stop"]) for t in declared["observation_terms"]] == [
        ("joint_positions", 0, 7), ("joint_velocities", 7, 14), ("ee_position", 14, 17), ("goal", 17, 20),
        ("goal_minus_ee", 20, 23)]
    joint_map = declared["joint_map"]
    assert len(joint_map["joints"]) == 7 and joint_map["control"] == "joint_delta"
    assert joint_map["action_terms"] == joint_map["joints"]
    assert declared["control_rate_hz"] == pytest.approx(48.0)
    # drl-ros export reads the same declarations through the run's env config.
    assert env_policy_contract(EnvConfig(id="drl_ros/KukaReachJoint-v0")) == declared
    torch.manual_seed(0)
    policy = Policy.create(obs_spec, act_spec, "squashed_gaussian", [16], "relu", normalize_observations=True)
    contract = export_onnx(policy, tmp_path, env_contract=declared).contract
    assert contract["observation"]["terms"][-1] == {"name": "goal_minus_ee", "start": 20, "stop": 23}
    assert contract["joint_map"]["joints"] == joint_map["joints"]
