"""Embedded training end to end: learning tests with fixed seeds, checkpoints, resume, Ctrl-C, CLI errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from drl_ros.core.checkpoint import load_checkpoint
from drl_ros.core.config import TrainConfig, load_train_config
from drl_ros.core.config_loading import load_config
from drl_ros.core.policy import Policy
from drl_ros.runtime.cli import main as cli_main
from drl_ros.runtime.trainer import Trainer

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def _train(config: TrainConfig, run_dir: Path, resume: bool = False):
    with Trainer(config, run_dir, resume=resume, progress=False) as trainer:
        return trainer, trainer.train()


def test_ppo_solves_cartpole_within_100k_steps(tmp_path):
    config = load_train_config(CONFIG_DIR / "cartpole_ppo.yaml", ["stop.mean_return=475", "eval.episodes=20"])
    assert config.total_steps <= 100_000
    _, result = _train(config, tmp_path / "run")
    assert result.steps <= 100_000
    assert result.final_eval is not None and result.final_eval.mean_return >= 475.0
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000


def test_sac_solves_pendulum_within_20k_steps(tmp_path):
    config = load_train_config(CONFIG_DIR / "pendulum_sac.yaml", ["stop.mean_return=-200", "eval.every_steps=1000"])
    assert config.total_steps <= 20_000
    _, result = _train(config, tmp_path / "run")
    assert result.steps <= 20_000
    assert result.final_eval is not None and result.final_eval.mean_return >= -250.0


def _small_sac_config(run_dir: Path, total_steps: int) -> TrainConfig:
    return load_config(TrainConfig, {
        "algorithm": "sac", "total_steps": total_steps, "seed": 3, "run_dir": str(run_dir),
        "env": {"id": "Pendulum-v1"},
        "sac": {"learning_starts": 200, "buffer_size": 5000, "hidden_sizes": [32, 32], "batch_size": 64},
        "eval": {"every_steps": 0, "episodes": 2}, "checkpoint_every_steps": 500, "log_every_steps": 100,
    })


def test_resume_restores_the_checkpoint_and_continues_training(tmp_path):
    run_dir = tmp_path / "run"
    first, result = _train(_small_sac_config(run_dir, 800), run_dir)
    assert result.steps == 800
    _, saved_meta = load_checkpoint(run_dir / "checkpoints" / "last")
    assert saved_meta["trainer"]["steps"] == 800
    updates_before = first.algorithm.updates
    assert updates_before == 601  # one per env step from learning_starts on

    with Trainer(_small_sac_config(run_dir, 1400), run_dir, resume=True, progress=False) as resumed:
        # Everything learned so far is back: weights, optimizer moments, buffer, counters.
        for name, tensor in resumed.algorithm.critic.state_dict().items():
            torch.testing.assert_close(tensor, first.algorithm.critic.state_dict()[name])
        assert resumed.algorithm.critic_optimizer.state_dict()["state"][0]["step"] == updates_before
        assert len(resumed.replay) == len(first.replay) == 800
        assert resumed.steps == 800 and resumed.algorithm.updates == updates_before
        weight_before = resumed.algorithm.policy.actor.mean_head.weight.detach().clone()
        result = resumed.train()
    assert result.steps == 1400
    assert resumed.algorithm.updates == updates_before + 600
    assert len(resumed.replay) == 1400
    assert not torch.equal(weight_before, resumed.algorithm.policy.actor.mean_head.weight)
    # The policy file on its own reproduces the trainer's deterministic actions.
    policy = Policy.load(run_dir / "policy")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs, deterministic=True).env_action,
                                  resumed.policy.act(obs, deterministic=True).env_action)


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    run_dir = tmp_path / "run"
    config = tmp_path / "long.yaml"
    config.write_text((CONFIG_DIR / "pendulum_sac.yaml").read_text())
    cmd = [sys.executable, "-m", "drl_ros.runtime.cli", "train", str(config), "--run-dir", str(run_dir),
           "--no-progress", "--set", "total_steps=1000000", "--set", "eval.every_steps=0",
           "--set", "sac.learning_starts=100000", "--set", "checkpoint_every_steps=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "metrics.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Interrupted at step" in out and f"drl-ros train --resume {run_dir}" in out
    _, meta = load_checkpoint(run_dir / "checkpoints" / "last")
    steps = meta["trainer"]["steps"]
    assert 0 < steps < 1_000_000
    assert (run_dir / "policy.json").exists()
    code = cli_main(["train", "--resume", str(run_dir), "--no-progress", "--set", f"total_steps={steps + 50}",
                     "--set", "eval.every_steps=0"])
    assert code == 0
    assert json.loads((run_dir / "eval.json").read_text())["steps"] == steps + 50


def test_bad_config_gets_a_clear_error_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: sac\nenv:\n  id: Pendulum-v1\nsac:\n  learning_rat: 0.001\n")
    assert cli_main(["train", str(bad), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "sac.learning_rat" in err and "learning_rate" in err and "bad.yaml" in err
    assert not (tmp_path / "run").exists()

    wrong_type = tmp_path / "wrong.yaml"
    wrong_type.write_text("algorithm: sac\ntotal_steps: lots\n")
    assert cli_main(["train", str(wrong_type)]) == 2
    assert "total_steps" in capsys.readouterr().err

    assert cli_main(["train", "no_such_config"]) == 2
    assert "no_such_config" in capsys.readouterr().err


def test_unknown_algorithm_and_bad_override_are_refused(capsys):
    assert cli_main(["train", str(CONFIG_DIR / "pendulum_sac.yaml"), "--set", "algorithm=dqn"]) == 2
    assert "algorithm" in capsys.readouterr().err
    assert cli_main(["train", str(CONFIG_DIR / "pendulum_sac.yaml"), "--set", "sac.gamma=2"]) == 2
    assert "gamma" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_shipped_config_loads(name):
    load_train_config(CONFIG_DIR / f"{name}.yaml")


def test_eval_and_plot_commands_read_a_finished_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _train(_small_sac_config(run_dir, 400), run_dir)
    capsys.readouterr()
    assert cli_main(["eval", str(run_dir), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "over 2 episodes" in out and "Pendulum-v1" in out
    assert cli_main(["plot", str(run_dir), "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli_main(["eval", str(tmp_path / "missing")]) == 2
