"""Embedded training: vector env → policy → buffer → algorithm, in one process.

The loop owns stepping, bookkeeping, evaluation, logging and checkpoints; the algorithm only
learns from batches (the same objects the ROS learner node drives from topics).
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drl_ros.core.algorithms import Algorithm, OffPolicyAlgorithm, OnPolicyAlgorithm, make_algorithm
from drl_ros.core.buffers import ReplayBuffer, RolloutBatch, RolloutBuffer, compute_gae
from drl_ros.core.checkpoint import clean_orphans, load_checkpoint, save_checkpoint
from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import config_to_dict, dump_config_yaml, load_config
from drl_ros.core.her import HerReplayBuffer
from drl_ros.core.metrics import MetricsWriter
from drl_ros.core.spaces import BoxSpec, DiscreteSpec, space_spec
from drl_ros.runtime.env_factory import make_env, make_vector_env
from drl_ros.runtime.env_resume import ReplayMismatch
from drl_ros.runtime.evaluation import EvalResult, evaluate

CHECKPOINT_NAME = "last"
STATE_FORMAT = "drl_ros.training_state"


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_eval: EvalResult | None
    interrupted: bool
    policy_path: Path
    curve_path: Path | None


class _Progress:
    """tqdm progress bar with live return, success and steps per second (or nothing when disabled)."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5,
                            smoothing=0.05)

    def update(self, n: int, postfix: dict[str, str]) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Trainer:
    """Trains one configuration into one run directory.

    Run directory layout: ``config.yaml``, ``metrics.csv``, ``tensorboard/``,
    ``checkpoints/last.json`` (+ tensors), ``policy.json`` (+ tensors), ``eval.json``,
    ``learning_curve.png``.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, *, resume: bool = False, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.progress_enabled = progress
        torch.set_num_threads(config.torch_threads)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)

        self.envs = make_vector_env(config.env)
        self.eval_env = make_env(config.env)
        # Optional curriculum (drl_ros.envs.curriculum), asked for through the env's ``curriculum``
        # kwarg: training episodes move the level, evaluation stays on the full task (level 1).
        self.curriculum: Any = None
        if getattr(self.eval_env.unwrapped, "curriculum_config", None) is not None:
            from drl_ros.envs.curriculum import Curriculum

            self.curriculum = Curriculum.for_env(self.eval_env.unwrapped)
            self.eval_env.unwrapped.set_curriculum_level(1.0)  # type: ignore[attr-defined]
        self._curriculum_sent = getattr(self.curriculum, "level", None)
        obs_spec = space_spec(self.envs.single_observation_space)
        if not isinstance(obs_spec, BoxSpec) or len(self.envs.single_observation_space.shape or ()) != 1:
            raise ValueError(f"env {config.env.id!r}: drl_ros policies need a flat Box observation space")
        self.obs_spec = obs_spec
        self.action_spec = space_spec(self.envs.single_action_space)
        algo_config = config.algorithm_config()
        self.algorithm: Algorithm = make_algorithm(config.algorithm, obs_spec, self.action_spec, algo_config)
        self.policy = self.algorithm.policy
        discrete = isinstance(self.action_spec, DiscreteSpec)
        action_shape: tuple[int, ...] = () if discrete else (self.action_spec.dim,)
        num_envs = config.env.num_envs
        self.replay: ReplayBuffer | None = None
        self.rollout: RolloutBuffer | None = None
        her = getattr(algo_config, "her", None)
        if isinstance(self.algorithm, OffPolicyAlgorithm) and her is not None:
            # Hindsight rewards come from the env's own compute_reward (the eval copy's is the same
            # function); the env says where the goals sit in its flat observation.
            goal_env = self.eval_env.unwrapped
            if not hasattr(goal_env, "goal_layout"):
                raise ValueError(f"env {config.env.id!r} declares no goal_layout: HER needs a goal-conditioned env")
            self.replay = HerReplayBuffer(max(algo_config.buffer_size, 2 * num_envs), obs_spec.dim, action_shape,
                                          goal_env.goal_layout, goal_env.compute_reward, her, num_envs, discrete,
                                          seed=config.seed)
        elif isinstance(self.algorithm, OffPolicyAlgorithm):
            self.replay = ReplayBuffer(max(algo_config.buffer_size, 2 * num_envs), obs_spec.dim, action_shape,
                                       num_envs, discrete, seed=config.seed)
        elif isinstance(self.algorithm, OnPolicyAlgorithm):
            self.rollout = RolloutBuffer(algo_config.n_steps, num_envs, obs_spec.dim, action_shape, discrete)

        self.steps = 0
        self.episodes = 0
        self.last_eval: EvalResult | None = None
        self.last_eval_step = -1
        self._next_eval = config.eval.every_steps if config.eval.every_steps > 0 else None
        self._next_checkpoint = config.checkpoint_every_steps or None
        self._next_log = config.log_every_steps
        self._recent_returns: deque[float] = deque(maxlen=20)
        self._recent_success: deque[float] = deque(maxlen=20)
        self._episode_return = np.zeros(num_envs)
        self._episode_length = np.zeros(num_envs, dtype=np.int64)
        self._last_update_metrics: dict[str, float] = {}
        self._sps_window: deque[tuple[float, int]] = deque(maxlen=50)
        self._obs: np.ndarray | None = None
        """The vector env's current observation; None until the envs are reset (or restored)."""

        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        # Leftovers of a write that was killed half-way; only this process writes here from now on.
        clean_orphans(self.checkpoint_dir)
        if resume:
            self._restore()
        else:
            dump_config_yaml(config, self.run_dir / "config.yaml")
        self.metrics = MetricsWriter(self.run_dir)

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        tensors, algo_tree = self.algorithm.state()
        metadata: dict[str, Any] = {
            "kind": STATE_FORMAT,
            "config": config_to_dict(self.config),
            "algorithm": algo_tree,
            "trainer": {"steps": self.steps, "episodes": self.episodes, "last_eval_step": self.last_eval_step,
                        "next_eval": self._next_eval, "next_checkpoint": self._next_checkpoint,
                        "next_log": self._next_log, "rng": self.rng.bit_generator.state},
        }
        if self.replay is not None:
            arrays, buffer_state = self.replay.state_dict()
            tensors.update({f"replay.{name}": torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()})
            metadata["replay"] = buffer_state
        tensors["rng.torch"] = torch.get_rng_state()
        self._save_env_state(tensors, metadata)
        return save_checkpoint(self.checkpoint_dir / CHECKPOINT_NAME, tensors, metadata)

    def _save_env_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
        """The episodes in progress (see drl_ros.runtime.env_resume), so resume continues them."""
        if self._obs is None:
            return
        records = self.envs.get_attr("episode_record")
        if any(record is None for record in records):
            return  # an episode too long to replay: resume starts fresh episodes
        tensors["envs.obs"] = torch.from_numpy(np.ascontiguousarray(self._obs))
        for i, record in enumerate(records):
            tensors[f"envs.{i}.actions"] = torch.from_numpy(np.ascontiguousarray(record["actions"]))
        metadata["envs"] = {
            "starts": [record["start"] for record in records],
            "options": [record["options"] for record in records],
            "episode_return": self._episode_return.tolist(),
            "episode_length": self._episode_length.tolist(),
            "recent_returns": list(self._recent_returns),
            "recent_success": list(self._recent_success),
        }

    def _restore_env_state(self, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> bool:
        """Replay the checkpoint's episodes in progress; False if there are none to replay."""
        saved = metadata.get("envs")
        if saved is None or len(saved["starts"]) != self.config.env.num_envs:
            return False
        records = [{"start": start, "options": options, "actions": tensors[f"envs.{i}.actions"].numpy()}
                   for i, (start, options) in enumerate(zip(saved["starts"], saved["options"]))]
        self.envs.set_attr("episode_record", records)
        obs = tensors["envs.obs"].numpy()
        replayed = np.stack(self.envs.get_attr("replayed_obs"))
        if not np.array_equal(replayed.astype(obs.dtype), obs):
            raise ReplayMismatch(f"env {self.config.env.id!r} did not replay its episodes to the checkpointed "
                                 "observations: it is not deterministic given its seed and actions")
        self._obs = obs.copy()
        self._episode_return[:] = saved["episode_return"]
        self._episode_length[:] = saved["episode_length"]
        self._recent_returns.extend(saved["recent_returns"])
        self._recent_success.extend(saved["recent_success"])
        return True

    def _restore(self) -> None:
        stem = self.checkpoint_dir / CHECKPOINT_NAME
        tensors, metadata = load_checkpoint(stem)
        if metadata.get("kind") != STATE_FORMAT:
            raise ValueError(f"{stem}: not a drl_ros training checkpoint")
        self.algorithm.load_state(tensors, metadata["algorithm"])
        trainer = metadata["trainer"]
        self.steps = int(trainer["steps"])
        self.episodes = int(trainer["episodes"])
        self.last_eval_step = int(trainer["last_eval_step"])
        self._next_eval = trainer["next_eval"]
        self._next_checkpoint = trainer["next_checkpoint"]
        self._next_log = int(trainer["next_log"])
        self.rng.bit_generator.state = trainer["rng"]
        try:
            envs_restored = self._restore_env_state(tensors, metadata)
        except ReplayMismatch as exc:
            print(f"warning: {exc}; resuming with fresh episodes", flush=True)
            self._obs = None
            envs_restored = False
        if self.replay is not None:
            arrays = {name[len("replay."):]: t.numpy() for name, t in tensors.items() if name.startswith("replay.")}
            self.replay.load_state_dict(arrays, metadata["replay"])
            if not envs_restored:
                # The envs restart with fresh episodes: the interrupted ones end where the checkpoint was.
                self.replay.open[:] = False
        torch.set_rng_state(tensors["rng.torch"])

    # -- bookkeeping ------------------------------------------------------------------------
    def _record_step(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                     info: dict[str, Any]) -> None:
        self._episode_return += reward
        self._episode_length += 1
        done = terminated | truncated
        if not done.any():
            return
        final_info = info.get("final_info", {})
        success = final_info.get("is_success")
        success_mask = final_info.get("_is_success")
        for env in np.flatnonzero(done):
            self.episodes += 1
            self._recent_returns.append(float(self._episode_return[env]))
            if success is not None and success_mask is not None and success_mask[env]:
                self._recent_success.append(float(success[env]))
                if self.curriculum is not None and self.curriculum.update(success[env]) != self._curriculum_sent:
                    self._curriculum_sent = self.curriculum.level
                    self.envs.call("set_curriculum_level", self.curriculum.level)
            self._episode_return[env] = 0.0
            self._episode_length[env] = 0

    @staticmethod
    def _true_next_obs(next_obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """Replace reset observations by the final observations of the episodes that just ended."""
        if not done.any():
            return next_obs
        real = next_obs.copy()
        final_obs, mask = info["final_obs"], info["_final_obs"]
        for env in np.flatnonzero(mask):
            real[env] = final_obs[env]
        return real

    def _postfix(self) -> dict[str, str]:
        postfix: dict[str, str] = {}
        if self._recent_returns:
            postfix["return"] = f"{np.mean(self._recent_returns):.2f}"
        if self._recent_success:
            postfix["success"] = f"{100 * np.mean(self._recent_success):.0f}%"
        if len(self._sps_window) >= 2:
            (t0, s0), (t1, s1) = self._sps_window[0], self._sps_window[-1]
            if t1 > t0:
                postfix["sps"] = f"{(s1 - s0) / (t1 - t0):.0f}"
        if self.last_eval is not None and self.last_eval.success_rate is not None:
            postfix["eval_success"] = f"{100 * self.last_eval.success_rate:.0f}%"
        return postfix

    def _periodic(self, progress: _Progress) -> bool:
        """Log, evaluate and checkpoint when due. Returns True when a stop target was reached."""
        stop = False
        if self.steps >= self._next_log:
            self._next_log = self.steps + self.config.log_every_steps
            scalars = {f"train/{k}": v for k, v in self._last_update_metrics.items() if np.isfinite(v)}
            if self._recent_returns:
                scalars["train/episode_return"] = float(np.mean(self._recent_returns))
            if self._recent_success:
                scalars["train/success_rate"] = float(np.mean(self._recent_success))
            if self.curriculum is not None:
                scalars["train/curriculum_level"] = self.curriculum.level
            postfix = self._postfix()
            if "sps" in postfix:
                scalars["train/steps_per_second"] = float(postfix["sps"])
            scalars["train/skipped_updates"] = float(self.algorithm.skipped_updates)
            self.metrics.scalars(self.steps, scalars)
            self.metrics.flush()  # so that a long run's metrics.csv can be followed while it trains
        if self._next_eval is not None and self.steps >= self._next_eval:
            self._next_eval = self.steps + self.config.eval.every_steps
            result = self.run_evaluation()
            progress.write(f"[eval @ {self.steps} steps] {result.summary()}")
            stop = self._stop_reached(result)
        if self._next_checkpoint is not None and self.steps >= self._next_checkpoint:
            self._next_checkpoint = self.steps + self.config.checkpoint_every_steps
            self.save_checkpoint()
        return stop

    def _stop_reached(self, result: EvalResult) -> bool:
        target = self.config.stop
        if target.success_rate is not None and result.success_rate is not None \
                and result.success_rate >= target.success_rate:
            return True
        return target.mean_return is not None and result.mean_return >= target.mean_return

    def run_evaluation(self, episodes: int | None = None) -> EvalResult:
        self.policy.eval()
        result = evaluate(self.policy, self.eval_env, episodes or self.config.eval.episodes, self.config.seed,
                          self.config.eval.deterministic)
        self.policy.train()
        self.last_eval = result
        self.last_eval_step = self.steps
        scalars = {"eval/mean_return": result.mean_return, "eval/mean_length": result.mean_length}
        if result.success_rate is not None:
            scalars["eval/success_rate"] = result.success_rate
        self.metrics.scalars(self.steps, scalars)
        self.metrics.flush()
        return result

    # -- loops ------------------------------------------------------------------------------
    def _reset_envs(self) -> np.ndarray:
        if self._obs is not None:
            return self._obs  # resumed mid-episode: the envs were replayed to where the checkpoint was
        # Without replayable episodes a resumed run reseeds from its step count: reproducible, not exact.
        obs, _ = self.envs.reset(seed=self.config.seed + self.steps)
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self._obs = obs
        return obs

    def _run_off_policy(self, progress: _Progress) -> None:
        assert isinstance(self.algorithm, OffPolicyAlgorithm) and self.replay is not None
        algo, policy, replay = self.algorithm, self.policy, self.replay
        cfg = algo.config
        num_envs = self.config.env.num_envs
        obs = self._reset_envs()
        iteration = self.steps // num_envs  # from the step count, so train_freq keeps its phase on resume
        while self.steps < self.config.total_steps:
            if self.steps < cfg.learning_starts:
                action = self._random_actions(num_envs)
                env_action = policy.scale_action(action)
            else:
                step = algo.collect_action(obs, self.steps)
                action, env_action = step.action, step.env_action
            next_obs, reward, terminated, truncated, info = self.envs.step(env_action)
            done = terminated | truncated
            replay.add(obs, action, reward, self._true_next_obs(next_obs, done, info), terminated, truncated)
            if policy.normalizer is not None:
                policy.normalizer.update(obs)
            self._record_step(reward, terminated, truncated, info)
            obs = self._obs = next_obs
            self.steps += num_envs
            iteration += 1
            if self.steps >= cfg.learning_starts and iteration % cfg.train_freq == 0:
                n_updates = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq * num_envs
                for _ in range(n_updates):
                    metrics = algo.learn(replay)
                self._last_update_metrics = metrics
            self._sps_window.append((time.perf_counter(), self.steps))
            progress.update(num_envs, self._postfix() if iteration % 50 == 0 else {})
            if self._periodic(progress):
                break

    def _run_on_policy(self, progress: _Progress) -> None:
        assert isinstance(self.algorithm, OnPolicyAlgorithm) and self.rollout is not None
        cfg = self.algorithm.config
        algo, policy, rollout = self.algorithm, self.policy, self.rollout
        num_envs = self.config.env.num_envs
        obs = self._reset_envs()
        total = self.config.total_steps
        while self.steps < total:
            rollout.reset()
            for _ in range(cfg.n_steps):
                step = policy.act(obs)
                next_obs, reward, terminated, truncated, info = self.envs.step(step.env_action)
                final_obs = None
                if truncated.any():
                    final_obs = self._true_next_obs(next_obs, truncated, info)
                rollout.add(obs, step.action, step.log_prob, reward, terminated, truncated, final_obs)
                self._record_step(reward, terminated, truncated, info)
                obs = self._obs = next_obs
                self.steps += num_envs
                self._sps_window.append((time.perf_counter(), self.steps))
                progress.update(num_envs, {})
            batch = self._finish_rollout(algo, rollout, obs)
            algo.progress_remaining = max(0.0, 1.0 - self.steps / total)
            self._last_update_metrics = algo.update(batch, self.rng)
            if policy.normalizer is not None:
                # Only now: the update must see the statistics the rollout's log-probs were computed with.
                policy.normalizer.update(rollout.obs.reshape(-1, rollout.obs.shape[-1]))
            progress.update(0, self._postfix())
            if self._periodic(progress):
                break

    def _random_actions(self, num_envs: int) -> np.ndarray:
        """Uniform actions in the policy's normalized space, for the warm-up before learning starts."""
        if isinstance(self.action_spec, DiscreteSpec):
            return self.rng.integers(0, self.action_spec.n, size=num_envs).astype(np.int64)
        return self.rng.uniform(-1.0, 1.0, size=(num_envs, self.action_spec.dim)).astype(np.float32)

    def _finish_rollout(self, algo: OnPolicyAlgorithm, rollout: RolloutBuffer, last_obs: np.ndarray) -> RolloutBatch:
        """Values, bootstrap values and GAE for a full rollout, flattened to ``(T·E, ...)``."""
        cfg = algo.config
        steps, envs = rollout.n_steps, rollout.num_envs
        values = algo.value(rollout.obs.reshape(steps * envs, -1)).reshape(steps, envs)
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[-1] = algo.value(last_obs)
        if rollout.truncated.any():
            t_idx, e_idx = np.nonzero(rollout.truncated)
            next_values[t_idx, e_idx] = algo.value(rollout.final_obs[t_idx, e_idx])
        advantages, returns = compute_gae(rollout.reward, values, next_values, rollout.terminated,
                                          rollout.truncated, cfg.gamma, cfg.gae_lambda)
        flat = steps * envs
        return RolloutBatch(
            obs=torch.from_numpy(rollout.obs.reshape(flat, -1)),
            action=torch.from_numpy(rollout.action.reshape(flat, *rollout.action.shape[2:])),
            log_prob=torch.from_numpy(rollout.log_prob.reshape(flat)),
            advantage=torch.from_numpy(advantages.reshape(flat)),
            returns=torch.from_numpy(returns.reshape(flat).astype(np.float32)),
            value=torch.from_numpy(values.reshape(flat).astype(np.float32)),
        )

    def train(self) -> TrainResult:
        """Run to the budget or a stop target. Ctrl-C saves a checkpoint and returns."""
        progress = _Progress(self.config.total_steps, self.steps, self.progress_enabled)
        interrupted = False
        try:
            if self.algorithm.on_policy:
                self._run_on_policy(progress)
            else:
                self._run_off_policy(progress)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.close()
        self.save_checkpoint()
        policy_path = self.policy.save(self.run_dir / "policy", {"steps": self.steps, "env_id": self.config.env.id})
        final_episodes = self.config.eval.final_episodes
        if not interrupted and (self.last_eval_step != self.steps
                                or (final_episodes is not None and final_episodes != self.config.eval.episodes)):
            self.run_evaluation(final_episodes)
        if self.last_eval is not None:
            (self.run_dir / "eval.json").write_text(json.dumps({"steps": self.last_eval_step,
                                                                **self.last_eval.to_dict()}, indent=2) + "\n")
        self.metrics.close()
        curve: Path | None = None
        try:
            from drl_ros.runtime.plot import plot_run

            curve = plot_run(self.run_dir)
        except (ImportError, ValueError):
            curve = None
        return TrainResult(self.run_dir, self.steps, self.last_eval, interrupted, policy_path, curve)

    def close(self) -> None:
        self.envs.close()
        self.eval_env.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def load_run_config(run_dir: Path) -> TrainConfig:
    return load_config(TrainConfig, Path(run_dir) / "config.yaml")
