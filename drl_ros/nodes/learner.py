"""learner: experience batches → gradient updates → versioned policy weights (latched).

The same algorithm objects as the embedded trainer (drl_ros.core.algorithms) learn from
experience that arrives from any number of collectors. Updates keep the embedded schedule per
transition received (``gradient_steps`` per ``train_freq`` transitions once ``learning_starts``
have arrived); when experience arrives faster than the learner updates, the owed updates are
worked off in time slices, so subscriptions and timers keep being served.

Topics (relative): experience (drl_ros/ExperienceBatch) in; policy_weights (drl_ros/PolicyWeights,
latched) and training_stats (drl_ros/TrainingStats) out. Version 0 is published at start: the
untrained initialisation, which policy servers answer with uniform warm-up actions.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from rclpy.node import Node
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.qos import QoSProfile

from drl_ros.core.algorithms import OffPolicyAlgorithm, make_algorithm
from drl_ros.core.buffers import ReplayBuffer
from drl_ros.core.checkpoint import save_checkpoint
from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import config_to_dict, load_config
from drl_ros.core.spaces import BoxSpec, DiscreteSpec, space_spec
from drl_ros.msg import ExperienceBatch, PolicyWeights, TrainingStats
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import LearnerConfig
from drl_ros.ros.conversions import Transitions, encode_policy, read_experience
from drl_ros.ros.parameters import declare_config
from drl_ros.runtime.cli import resolve_config
from drl_ros.runtime.env_factory import make_env


class Learner(Node):
    def __init__(self, node_name: str = "learner", *, experience_qos: QoSProfile = qos.EXPERIENCE,
                 weights_qos: QoSProfile = qos.LATCHED, stats_qos: QoSProfile = qos.STATUS, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, LearnerConfig)
        # Timers pace work and watch liveness in wall time: with use_sim_time, a ROS-time timer
        # would wait for /clock, which only advances once the loop runs (a deadlock at start).
        self._steady = RclpyClock(clock_type=ClockType.STEADY_TIME)
        self.train_config = load_config(TrainConfig, resolve_config(self.config.config),
                                        overrides=self.config.overrides)
        tc = self.train_config
        torch.set_num_threads(tc.torch_threads)
        torch.manual_seed(tc.seed)
        # The env is built once for its spaces only: the policy must scale actions as the env expects.
        env = make_env(tc.env)
        try:
            obs_spec = space_spec(env.observation_space)
            action_spec = space_spec(env.action_space)
        finally:
            env.close()
        if not isinstance(obs_spec, BoxSpec):
            raise ValueError(f"{tc.env.id}: the learner needs a flat Box observation space")
        self.algorithm = make_algorithm(tc.algorithm, obs_spec, action_spec, tc.algorithm_config())
        if not isinstance(self.algorithm, OffPolicyAlgorithm):
            # On-policy learning over topics needs whole rollouts of one policy version; not here yet.
            raise ValueError(f"the ROS learner runs off-policy algorithms; {tc.algorithm!r} is on-policy")
        self.policy = self.algorithm.policy
        algo = self.algorithm.config
        discrete = isinstance(action_spec, DiscreteSpec)
        self.replay = ReplayBuffer(max(algo.buffer_size, 2), obs_spec.dim, () if discrete else (action_spec.dim,),
                                   1, discrete, seed=tc.seed)
        self.obs_dim = obs_spec.dim
        self.act_dim = action_spec.dim
        self._queue: deque[ExperienceBatch] = deque()
        self._last_source = ""
        self.received = 0
        self.updates = 0
        self._published_at = 0
        self._checkpoint_at = 0
        self._metrics: dict[str, float] = {}
        self._episode_return: dict[str, float] = {}
        self._returns: deque[float] = deque(maxlen=20)
        self._successes: deque[float] = deque(maxlen=20)
        self.episodes = 0

        self._weights_pub = self.create_publisher(PolicyWeights, "policy_weights", weights_qos)
        self._stats_pub = self.create_publisher(TrainingStats, "training_stats", stats_qos)
        self._sub = self.create_subscription(ExperienceBatch, "experience", self._on_experience, experience_qos)
        self._work_timer = self.create_timer(0.005, self._work, clock=self._steady)
        self._stats_timer = self.create_timer(self.config.stats_period, self.publish_stats, clock=self._steady)
        self.publish_weights()
        self.get_logger().info(f"learning {tc.algorithm.upper()} for {tc.env.id}; published version 0")

    # -- experience ---------------------------------------------------------------------------
    def _on_experience(self, msg: ExperienceBatch) -> None:
        self._queue.append(msg)  # ingested by the work timer, between slices of updates

    def _ingest(self, msg: ExperienceBatch) -> None:
        try:
            t = read_experience(msg)
        except ValueError as error:
            self.get_logger().error(f"dropping a batch from {msg.source!r}: {error}", throttle_duration_sec=5.0)
            return
        if len(t) == 0:
            return
        if t.obs.shape[1] != self.obs_dim or t.action.shape[1] != self.act_dim:
            self.get_logger().error(f"dropping a batch from {msg.source!r}: dimensions {t.obs.shape[1]}/"
                                    f"{t.action.shape[1]}, expected {self.obs_dim}/{self.act_dim}",
                                    throttle_duration_sec=5.0)
            return
        finite = (np.isfinite(t.obs).all(1) & np.isfinite(t.next_obs).all(1) & np.isfinite(t.action).all(1)
                  & np.isfinite(t.reward))
        if not finite.all():
            self.get_logger().warn(f"dropping {int((~finite).sum())} non-finite transitions from {msg.source!r}",
                                   throttle_duration_sec=5.0)
            t = Transitions(*(getattr(t, f)[finite] for f in Transitions.__dataclass_fields__))
            msg.contiguous = False
        # One replay stream: it continues only where this batch continues the previous one.
        if msg.source != self._last_source or not msg.contiguous:
            self.replay.open[:] = False
        self._last_source = msg.source
        action = self.policy.unscale_action(t.action) if not self.policy.discrete else t.action
        for i in range(len(t)):
            self.replay.add(t.obs[i:i + 1], action[i:i + 1], t.reward[i:i + 1], t.next_obs[i:i + 1],
                            t.terminated[i:i + 1], t.truncated[i:i + 1])
        if self.policy.normalizer is not None:
            self.policy.normalizer.update(t.obs)
        self.received += len(t)
        ret = self._episode_return.get(msg.source, 0.0)
        for i in range(len(t)):
            ret += float(t.reward[i])
            if t.terminated[i] or t.truncated[i]:
                self._returns.append(ret)
                self._successes.append(float(t.is_success[i]))
                self.episodes += 1
                ret = 0.0
        self._episode_return[msg.source] = ret

    def owed_updates(self) -> int:
        cfg = self.algorithm.config
        if self.received < cfg.learning_starts:
            return 0
        per_round = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq
        due = ((self.received - cfg.learning_starts) // cfg.train_freq + 1) * per_round
        return max(0, due - self.updates)

    # -- the work loop ------------------------------------------------------------------------
    def _work(self) -> None:
        while self._queue:
            self._ingest(self._queue.popleft())
        deadline = time.perf_counter() + self.config.update_slice
        while self.owed_updates() > 0 and time.perf_counter() < deadline:
            self._metrics = self.algorithm.learn(self.replay)
            self.updates += 1
            if self.updates - self._published_at >= self.config.publish_every_updates:
                self.publish_weights()
            if (self.config.run_dir and self.config.checkpoint_every_updates
                    and self.updates - self._checkpoint_at >= self.config.checkpoint_every_updates):
                self.save()

    def publish_weights(self) -> None:
        if self.updates > 0:
            self.policy.version += 1
        self._published_at = self.updates
        version, metadata, sha, blob = encode_policy(self.policy, {"updates": self.updates,
                                                                   "transitions": self.received})
        msg = PolicyWeights()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.version = version
        msg.metadata_json = metadata
        msg.sha256 = sha
        msg.safetensors = blob
        self._weights_pub.publish(msg)

    def publish_stats(self) -> None:
        msg = TrainingStats()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.policy_version = int(self.policy.version)
        msg.transitions_received = self.received
        msg.updates = self.updates
        msg.pending_updates = self.owed_updates()
        msg.episodes = self.episodes
        msg.mean_episode_return = float(np.mean(self._returns)) if self._returns else math.nan
        msg.success_rate = float(np.mean(self._successes)) if self._successes else math.nan
        names = sorted(k for k, v in self._metrics.items() if math.isfinite(v))
        msg.metric_names = names
        msg.metric_values = [float(self._metrics[k]) for k in names]
        self._stats_pub.publish(msg)

    def save(self) -> Path | None:
        """Policy and learning state into run_dir (the replay buffer stays in memory)."""
        if not self.config.run_dir:
            return None
        run_dir = Path(self.config.run_dir)
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        self._checkpoint_at = self.updates
        tensors, tree = self.algorithm.state()
        save_checkpoint(run_dir / "checkpoints" / "learner", tensors,
                        {"kind": "drl_ros.ros_learner_state", "config": config_to_dict(self.train_config),
                         "algorithm": tree, "updates": self.updates, "transitions": self.received})
        return self.policy.save(run_dir / "policy", {"updates": self.updates, "transitions": self.received,
                                                     "env_id": self.train_config.env.id})

    def close(self) -> None:
        self.save()


def main(args: list[str] | None = None) -> int:
    return run_node(Learner, args)


if __name__ == "__main__":
    raise SystemExit(main())
