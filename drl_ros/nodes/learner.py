"""learner: experience batches → gradient updates → versioned policy weights (latched).

The same algorithm objects as the embedded trainer (drl_ros.core.algorithms) learn from
experience that arrives from any number of collectors. Updates keep the embedded schedule per
transition received (``gradient_steps`` per ``train_freq`` transitions once ``learning_starts``
have arrived); when experience arrives faster than the learner updates, the owed updates are
worked off in time slices, so subscriptions and timers keep being served.

Topics (relative): experience (drl_ros/ExperienceBatch) in; policy_weights (drl_ros/PolicyWeights,
latched) and training_stats (drl_ros/TrainingStats, with per-source transition counts) out.
Version 0 is published at start: the untrained initialisation, which policy servers answer with
uniform warm-up actions.

With a run_dir, the learner checkpoints atomically every ``checkpoint_every_updates`` and when it
stops, and a restarted learner resumes from that checkpoint (model, optimizers, replay buffer,
normalizer, RNG, counters); the weights it then publishes carry a version above every version
published before, so policy servers take them. The learning logic is
drl_ros.runtime.experience_learner, ROS-free.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile

from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import load_config
from drl_ros.msg import ExperienceBatch, PolicyWeights, TrainingStats
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import LearnerConfig
from drl_ros.ros.conversions import encode_policy, read_experience
from drl_ros.ros.parameters import declare_config
from drl_ros.runtime.cli import resolve_config
from drl_ros.runtime.experience_learner import ExperienceLearner


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
        self.learner = ExperienceLearner(tc)
        self.policy = self.learner.policy
        resumed = bool(self.config.run_dir and self.config.resume and self.learner.resume(self.config.run_dir))
        self._queue: deque[ExperienceBatch] = deque()
        self._published_at = self.learner.updates
        self._checkpoint_at = self.learner.updates

        self._weights_pub = self.create_publisher(PolicyWeights, "policy_weights", weights_qos)
        self._stats_pub = self.create_publisher(TrainingStats, "training_stats", stats_qos)
        self._sub = self.create_subscription(ExperienceBatch, "experience", self._on_experience, experience_qos)
        self._work_timer = self.create_timer(0.005, self._work, clock=self._steady)
        self._stats_timer = self.create_timer(self.config.stats_period, self.publish_stats, clock=self._steady)
        self.publish_weights()
        if resumed:
            self.get_logger().info(
                f"resumed {tc.algorithm.upper()} for {tc.env.id} from {self.config.run_dir}: "
                f"{self.learner.updates} updates, {self.learner.received} transitions, "
                f"{len(self.learner.replay)} in replay; published version {self.policy.version}")
        else:
            self.get_logger().info(f"learning {tc.algorithm.upper()} for {tc.env.id}; "
                                   f"published version {self.policy.version}")

    @property
    def updates(self) -> int:
        return self.learner.updates

    @property
    def received(self) -> int:
        return self.learner.received

    # -- experience ---------------------------------------------------------------------------
    def _on_experience(self, msg: ExperienceBatch) -> None:
        self._queue.append(msg)  # ingested by the work timer, between slices of updates

    def _ingest(self, msg: ExperienceBatch) -> None:
        try:
            t = read_experience(msg)
        except ValueError as error:
            self.get_logger().error(f"dropping a batch from {msg.source!r}: {error}", throttle_duration_sec=5.0)
            return
        result = self.learner.ingest(
            t.obs, t.action, t.reward, t.next_obs, t.terminated, t.truncated, t.is_success, source=msg.source,
            session=int(msg.session), bridge_session=int(msg.bridge_session),
            first_sequence=int(msg.first_sequence), contiguous=bool(msg.contiguous))
        if result.error:
            self.get_logger().error(f"dropping a batch from {msg.source!r}: {result.error}",
                                    throttle_duration_sec=5.0)
        if result.dropped_non_finite:
            self.get_logger().warn(f"dropping {result.dropped_non_finite} non-finite transitions from "
                                   f"{msg.source!r}", throttle_duration_sec=5.0)

    def owed_updates(self) -> int:
        return self.learner.owed_updates()

    # -- the work loop ------------------------------------------------------------------------
    def _work(self) -> None:
        while self._queue:
            self._ingest(self._queue.popleft())
        deadline = time.perf_counter() + self.config.update_slice
        while self.learner.owed_updates() > 0 and time.perf_counter() < deadline:
            self.learner.update()
            if self.learner.updates - self._published_at >= self.config.publish_every_updates:
                self.publish_weights()
            if (self.config.run_dir and self.config.checkpoint_every_updates
                    and self.learner.updates - self._checkpoint_at >= self.config.checkpoint_every_updates):
                self.checkpoint()

    def publish_weights(self) -> None:
        version = self.learner.next_version()
        # Recorded before it goes out: a restarted learner never reuses a version a server has seen.
        self.learner.mark_published(version, self.config.run_dir)
        self._published_at = self.learner.updates
        version, metadata, sha, blob = encode_policy(self.policy, {"updates": self.learner.updates,
                                                                   "transitions": self.learner.received})
        msg = PolicyWeights()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.version = version
        msg.metadata_json = metadata
        msg.sha256 = sha
        msg.safetensors = blob
        self._weights_pub.publish(msg)

    def publish_stats(self) -> None:
        learner = self.learner
        msg = TrainingStats()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.policy_version = int(self.policy.version)
        msg.transitions_received = learner.received
        msg.updates = learner.updates
        msg.pending_updates = learner.owed_updates()
        msg.episodes = learner.episodes
        msg.mean_episode_return = learner.mean_return()
        msg.success_rate = learner.success_rate()
        names = sorted(k for k, v in learner.metrics.items() if np.isfinite(v))
        msg.metric_names = names
        msg.metric_values = [float(learner.metrics[k]) for k in names]
        counts = learner.source_counts()
        msg.sources = list(counts)
        msg.source_transitions = [int(v) for v in counts.values()]
        msg.stream_resets = learner.stream_resets
        self._stats_pub.publish(msg)

    def checkpoint(self) -> Path | None:
        """Atomic checkpoint of the whole learning state into run_dir (resumed at the next start)."""
        if not self.config.run_dir:
            return None
        self._checkpoint_at = self.learner.updates
        return self.learner.save(self.config.run_dir)

    def save(self) -> Path | None:
        """Checkpoint, and the current policy as ``run_dir/policy`` (for deployment)."""
        if not self.config.run_dir:
            return None
        self.checkpoint()
        return self.policy.save(Path(self.config.run_dir) / "policy",
                                {"updates": self.learner.updates, "transitions": self.learner.received,
                                 "env_id": self.train_config.env.id})

    def close(self) -> None:
        self.save()


def main(args: list[str] | None = None) -> int:
    return run_node(Learner, args)


if __name__ == "__main__":
    raise SystemExit(main())
