"""QoS profiles of every drl_ros topic (DESIGN.md section 5), passed into the nodes rather than
chosen inside them, so a deployment can tighten one without touching node code."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

SENSOR = qos_profile_sensor_data
"""Raw sensor streams from a robot driver (joint_states, imu): best effort, newest wins."""

OBSERVATION = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
"""Observations from gym_bridge: reliable, because in simulation every lost observation would
stall the lock-step loop and drop a transition. A best-effort subscriber still matches it."""

COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
"""Actions and commands: reliable, shallow, never latched (a stale command must not reach a robot
that starts later)."""

LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Latched state (policy weights, versions): a node that starts later still gets the newest."""

EXPERIENCE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
"""Experience batches: reliable with a deep queue, so a busy learner loses nothing."""

STATUS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
"""Shield status and training statistics."""

CLOCK = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                   durability=DurabilityPolicy.VOLATILE)
"""/clock: reliable, which matches both the best-effort and the reliable subscribers of clients."""
