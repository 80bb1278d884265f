"""N steps + kill + resume N steps == 2N steps straight, bitwise, on CPU with a fixed seed.

Checkpoints land mid-episode on purpose (Pendulum episodes are 200 steps, Kuka reach 50): the
envs are replayed to where they were (drl_ros.runtime.env_resume), so nothing about the run
differs from one that was never interrupted: networks, optimizer moments, replay buffer, RNG.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drl_ros.core.checkpoint import load_checkpoint
from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import load_config
from drl_ros.runtime.trainer import Trainer

REPO = Path(__file__).resolve().parent.parent


class _Killed(Exception):
    """Stands for SIGKILL right after a checkpoint: the trainer is abandoned mid-run."""


def _config(run_dir: Path, total: int, every: int, **sections: Any) -> TrainConfig:
    data: dict[str, Any] = {"total_steps": total, "seed": 7, "run_dir": str(run_dir), "checkpoint_every_steps": every,
                            "log_every_steps": 50, "eval": {"every_steps": 0, "episodes": 1}}
    data.update(sections)
    return load_config(TrainConfig, data)


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Everything learned: modules, optimizer moments, counters, replay buffer."""
    tensors, tree = trainer.algorithm.state()
    out = dict(tensors)
    out["counters"] = torch.tensor([trainer.algorithm.updates, trainer.algorithm.skipped_updates, trainer.steps])
    if trainer.replay is not None:
        arrays, _ = trainer.replay.state_dict()
        out.update({f"replay.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return out


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    assert not different, f"differs after resume: {different[:10]}"


def _straight(config: TrainConfig, run_dir: Path) -> dict[str, torch.Tensor]:
    with Trainer(config, run_dir, progress=False) as trainer:
        trainer.train()
        return _state(trainer)


def _killed_at(config: TrainConfig, run_dir: Path, steps: int) -> None:
    trainer = Trainer(config, run_dir, progress=False)
    save = trainer.save_checkpoint

    def save_then_die() -> Path:
        path = save()
        if trainer.steps >= steps:
            raise _Killed
        return path

    trainer.save_checkpoint = save_then_die  # type: ignore[method-assign]
    try:
        with pytest.raises(_Killed):
            trainer.train()
    finally:
        trainer.close()


def _resumed(config: TrainConfig, run_dir: Path) -> dict[str, torch.Tensor]:
    with Trainer(config, run_dir, resume=True, progress=False) as trainer:
        trainer.train()
        return _state(trainer)


SAC_SMALL = {"learning_starts": 100, "buffer_size": 2000, "hidden_sizes": [32, 32], "batch_size": 32}

CASES = {
    # Pendulum, one env: checkpoint at step 300, in the middle of the second episode.
    "sac-pendulum": (300, {"algorithm": "sac", "env": {"id": "Pendulum-v1"}, "sac": SAC_SMALL}),
    # Two envs, train_freq 2: the vector path and the update phase across the resume.
    "sac-pendulum-2envs": (300, {"algorithm": "sac", "env": {"id": "Pendulum-v1", "num_envs": 2},
                                 "sac": {**SAC_SMALL, "train_freq": 2}}),
    # On-policy: the checkpoint falls between rollouts, mid-episode.
    "ppo-pendulum": (256, {"algorithm": "ppo", "env": {"id": "Pendulum-v1"},
                           "ppo": {"n_steps": 128, "batch_size": 32, "n_epochs": 2, "hidden_sizes": [16, 16],
                                   "normalize_observations": True}}),
    # PyBullet: the Kuka reach, 50-step episodes, checkpoint at step 130.
    "sac-kuka": (130, {"algorithm": "sac", "env": {"id": "drl_ros/KukaReachJoint-v0"},
                       "sac": {**SAC_SMALL, "learning_starts": 60, "normalize_observations": True}}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_n_steps_kill_resume_n_steps_equals_2n_straight(tmp_path: Path, name: str) -> None:
    n, sections = CASES[name]
    straight = _straight(_config(tmp_path / "straight", 2 * n, n, **sections), tmp_path / "straight")
    run = tmp_path / "interrupted"
    _killed_at(_config(run, 2 * n, n, **sections), run, n)
    _, meta = load_checkpoint(run / "checkpoints" / "last")
    assert meta["trainer"]["steps"] == n and "envs" in meta  # mid-episode, with the episodes in it
    resumed = _resumed(_config(run, 2 * n, n, **sections), run)
    _assert_bitwise_equal(straight, resumed)


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from drl_ros.core.config import TrainConfig
    from drl_ros.core.config_loading import load_config
    from drl_ros.runtime.trainer import Trainer

    run_dir, total, resume = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "resume"
    config = load_config(TrainConfig, {
        "algorithm": "sac", "total_steps": total, "seed": 7, "run_dir": str(run_dir),
        "checkpoint_every_steps": 150, "log_every_steps": 50, "eval": {"every_steps": 0, "episodes": 1},
        "env": {"id": "Pendulum-v1"},
        "sac": {"learning_starts": 100, "buffer_size": 2000, "hidden_sizes": [32, 32], "batch_size": 32}})
    trainer = Trainer(config, run_dir, resume=resume, progress=False)
    trainer.train()
    trainer.close()
""")


def test_kill_during_a_checkpoint_leaves_the_previous_one_which_resumes_exactly(tmp_path: Path) -> None:
    """Process 1 trains to step 150 (checkpoint). Process 2 resumes and is SIGKILLed inside its
    checkpoint at step 300, after the new tensor file is in place and before the new record is
    committed (test_checkpoint.py covers every stage at the file level). The step-150 checkpoint
    is still intact and loadable; resuming from it finishes the run with the same parameters as
    a run never interrupted."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = tmp_path / "train.py"
    script.write_text(_KILL_SCRIPT)
    subprocess.run([sys.executable, str(script), str(run), "150", "new"], env=env, check=True, timeout=300)
    killed = subprocess.run([sys.executable, str(script), str(run), "450", "resume"],
                            env={**env, "DRL_ROS_CHECKPOINT_CRASH_AT": "json_tmp_written"}, timeout=300)
    assert killed.returncode == -9  # SIGKILL inside save_checkpoint at step 300
    _, meta = load_checkpoint(run / "checkpoints" / "last")
    assert meta["trainer"]["steps"] == 150
    leftovers = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert any(".tmp-" in name for name in leftovers), leftovers  # the killed write's debris
    resumed = _resumed(_config(run, 300, 150, algorithm="sac", env={"id": "Pendulum-v1"}, sac=SAC_SMALL), run)
    # The resume cleaned the killed write's leftovers: one record and the tensors it names.
    assert len(list((run / "checkpoints").glob("*.safetensors"))) == 1, leftovers
    straight = _straight(_config(tmp_path / "straight", 300, 150, algorithm="sac", env={"id": "Pendulum-v1"},
                                 sac=SAC_SMALL), tmp_path / "straight")
    _assert_bitwise_equal(straight, resumed)
