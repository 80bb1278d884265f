"""experience_collector: one gym_bridge's observation stream → experience batches.

Each Observation carries the action applied in the step that led to it, so a transition is two
consecutive observations of one bridge: ``(obs_n, action_{n+1}, reward_{n+1}, next obs,
terminated, truncated)`` with the final observation where the step ended an episode. A gap in the
sequence (a lost message) or a new bridge session (the bridge restarted) closes the stream; the
next batch says it is not contiguous. Each collector process draws a session id of its own, so the
learner never continues a stream across a collector restart either.

Topics (relative): observation (drl_ros/Observation) in, experience (drl_ros/ExperienceBatch) out.
"""

from __future__ import annotations

import secrets

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile

from drl_ros.msg import ExperienceBatch, Observation
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import ExperienceCollectorConfig
from drl_ros.ros.conversions import Transitions, fill_experience, from_array
from drl_ros.ros.parameters import declare_config


class ExperienceCollector(Node):
    def __init__(self, node_name: str = "experience_collector", *, observation_qos: QoSProfile = qos.OBSERVATION,
                 experience_qos: QoSProfile = qos.EXPERIENCE, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, ExperienceCollectorConfig)
        self._pub = self.create_publisher(ExperienceBatch, "experience", experience_qos)
        self._sub = self.create_subscription(Observation, "observation", self._on_observation, observation_qos)
        self.session = secrets.randbits(63) + 1
        self._prev: tuple[int, int, np.ndarray] | None = None  # (bridge session, sequence, observation)
        self._bridge_session = 0  # of the rows being collected
        self._rows: list[tuple] = []
        self._first_sequence = 0
        self._contiguous = False
        self._last_emitted = -1  # sequence of the last transition's start already in a batch
        self.transitions = 0
        self.batches = 0

    def _on_observation(self, msg: Observation) -> None:
        obs = from_array(msg.observation)
        same_bridge = self._prev is not None and msg.session == self._prev[0]
        if same_bridge and msg.sequence == self._prev[1]:
            return  # the bridge republished an unanswered observation
        if self._rows and not same_bridge:
            self._flush()  # the bridge restarted: what came before is a finished stream
        if (self._prev is not None and same_bridge and msg.sequence == self._prev[1] + 1 and msg.has_previous_step
                and obs.size == self._prev[2].size):
            end = msg.terminated or msg.truncated
            next_obs = from_array(msg.final_observation) if end else obs
            action = from_array(msg.action)
            if next_obs.size == obs.size and np.all(np.isfinite(action)):
                if not self._rows:
                    self._first_sequence = self._prev[1]
                    self._contiguous = (self._bridge_session == msg.session
                                        and self._last_emitted == self._prev[1] - 1)
                    self._bridge_session = msg.session
                self._rows.append((self._prev[2], action, msg.reward, next_obs, msg.terminated, msg.truncated,
                                   msg.is_success, msg.action_log_prob, msg.action_policy_version))
                self._last_emitted = self._prev[1]
                if len(self._rows) >= self.config.batch_size or (end and self.config.flush_on_episode_end):
                    self._flush()
        elif self._rows:
            self._flush()  # a gap: what was collected still counts, the stream restarts here
        self._prev = (msg.session, msg.sequence, obs)

    def _flush(self) -> None:
        rows = self._rows
        self._rows = []
        if not rows:
            return
        cols = list(zip(*rows))
        t = Transitions(obs=np.stack(cols[0]), action=np.stack(cols[1]), reward=np.asarray(cols[2], np.float32),
                        next_obs=np.stack(cols[3]), terminated=np.asarray(cols[4], bool),
                        truncated=np.asarray(cols[5], bool), is_success=np.asarray(cols[6], bool),
                        log_prob=np.asarray(cols[7], np.float32), policy_version=np.asarray(cols[8], np.int64))
        msg = ExperienceBatch()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.source = self.get_fully_qualified_name()
        msg.session = self.session
        msg.bridge_session = self._bridge_session
        msg.first_sequence = self._first_sequence
        msg.contiguous = self._contiguous
        fill_experience(msg, t)
        self._pub.publish(msg)
        self.transitions += len(t)
        self.batches += 1


def main(args: list[str] | None = None) -> int:
    return run_node(ExperienceCollector, args)


if __name__ == "__main__":
    raise SystemExit(main())
