"""Learning tests with fixed seeds for REINFORCE, A2C, TRPO, DDPG, TD3 and HER, run through the embedded
trainer with the shipped configs; plus resume of a TD3 + HER run."""

from pathlib import Path

import numpy as np
import pytest
import torch

from drl_ros.core.config import TrainConfig, load_train_config
from drl_ros.core.config_loading import load_config
from drl_ros.core.her import HerReplayBuffer
from drl_ros.runtime.trainer import Trainer

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _train(config: TrainConfig, run_dir: Path):
    with Trainer(config, run_dir, progress=False) as trainer:
        return trainer, trainer.train()


@pytest.mark.parametrize(("name", "budget"), [("cartpole_a2c", 100_000), ("cartpole_reinforce", 100_000),
                                              ("cartpole_trpo", 100_000)])
def test_policy_gradient_solves_cartpole(tmp_path, name, budget):
    config = load_train_config(CONFIG_DIR / f"{name}.yaml", ["stop.mean_return=475", "eval.episodes=20",
                                                             f"total_steps={budget}"])
    _, result = _train(config, tmp_path / "run")
    assert result.steps <= budget
    assert result.final_eval is not None and result.final_eval.mean_return >= 475.0


@pytest.mark.parametrize("name", ["pendulum_td3", "pendulum_ddpg"])
def test_deterministic_actor_critic_solves_pendulum_within_30k_steps(tmp_path, name):
    config = load_train_config(CONFIG_DIR / f"{name}.yaml", ["stop.mean_return=-200", "eval.every_steps=1000"])
    assert config.total_steps <= 30_000
    _, result = _train(config, tmp_path / "run")
    assert result.steps <= 30_000
    assert result.final_eval is not None and result.final_eval.mean_return >= -200.0


def test_sac_with_her_solves_the_sparse_goal_reach(tmp_path):
    config = load_train_config(CONFIG_DIR / "kuka_reach_her.yaml", ["total_steps=20000"])
    assert config.sac.her is not None and config.env.id == "drl_ros/KukaReachGoal-v0"
    trainer, result = _train(config, tmp_path / "run")
    assert isinstance(trainer.replay, HerReplayBuffer)
    assert result.steps <= 20_000
    assert result.final_eval is not None and result.final_eval.episodes == 100
    assert result.final_eval.success_rate >= 0.95


def _td3_her_config(run_dir: Path, total_steps: int) -> TrainConfig:
    return load_config(TrainConfig, {
        "algorithm": "td3", "total_steps": total_steps, "seed": 1, "run_dir": str(run_dir),
        "env": {"id": "drl_ros/KukaReachGoal-v0"},
        "td3": {"learning_starts": 100, "buffer_size": 2000, "hidden_sizes": [16], "batch_size": 32,
                "her": {"strategy": "final", "k": 2}},
        "eval": {"every_steps": 0, "episodes": 1}, "checkpoint_every_steps": 0, "log_every_steps": 100,
    })


def test_td3_with_her_resumes_its_relabelling_state(tmp_path):
    run_dir = tmp_path / "run"
    first, result = _train(_td3_her_config(run_dir, 250), run_dir)
    assert result.steps == 250 and first.algorithm.updates == 151
    assert (first.replay.episode_end[:250, 0] >= 0).sum() == 250  # five whole 50-step episodes
    with Trainer(_td3_her_config(run_dir, 300), run_dir, resume=True, progress=False) as resumed:
        np.testing.assert_array_equal(resumed.replay.episode_end, first.replay.episode_end)
        for name, tensor in resumed.algorithm.actor_target.state_dict().items():
            torch.testing.assert_close(tensor, first.algorithm.actor_target.state_dict()[name])
        assert resumed.algorithm.actor_updates == first.algorithm.actor_updates == 75
        result = resumed.train()
    assert result.steps == 300 and resumed.algorithm.updates == 201
