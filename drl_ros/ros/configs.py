"""Settings of the five nodes and the simulated driver, one dataclass per node.

ROS-free on purpose: :func:`drl_ros.ros.parameters.declare_config` turns each field into a ROS
parameter (its docstring becomes the parameter description), and tests or composed mode can build
the same settings without rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def check_joint_map_lengths(names: list[str], scale: list[float], offset: list[float], command_order: list[str]) -> None:
    """The hardware joint map's fields agree with its joint names (ValueError naming the field)."""
    for field_name, values in (("joint_position_scale", scale), ("joint_position_offset", offset)):
        if values and len(values) != len(names):
            raise ValueError(f"{field_name} needs one value per joint ({len(names)}), got {len(values)}")
    if command_order and sorted(command_order) != sorted(names):
        raise ValueError("command_joint_order must be a permutation of joint_names")


@dataclass
class GymBridgeConfig:
    """gym_bridge: a Gymnasium env behind topics and services."""

    backend: str = "pybullet"
    """``pybullet`` (simulation) or ``hardware`` (a robot driver's joint_states / command topics)."""
    env_id: str = "drl_ros/KukaReach-v0"
    """Gymnasium id of the env (pybullet backend), or whose robot and task the hardware backend mirrors."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the env (a JSON object as a ROS parameter)."""
    seed: int = 0
    """Seed of the first reset; later episodes continue the env's random stream."""
    render_mode: str = ""
    """Simulation: ``human`` opens the PyBullet window (needs a display); empty: headless."""
    step_on_command: bool = True
    """Simulation: advance one control step per command received (as fast as the loop runs).
    False leaves the env to the reset_env / step_env services alone (lock-step clients)."""
    command_timeout: float = 1.0
    """Simulation: republish the current observation when no command answered it for this long
    (seconds, wall time), so a lost message cannot stall the loop; 0 disables."""
    publish_clock: bool = True
    """Simulation: publish /clock with the simulated time (nodes with use_sim_time follow it)."""
    max_steps: int = 0
    """Stop stepping on commands after this many steps in total (0: no limit); services still work."""
    max_pending_updates: int = 0
    """Simulation: hold each step while the learner (its training_stats) reports more updates owed
    than this, so a fast simulator cannot outrun the learner's update-to-data ratio; 0: never wait."""
    # -- hardware backend --
    joint_names: list[str] = field(default_factory=list)
    """Hardware: the driver's names of the robot's joints, in the model's order (base to tip); empty
    means the mirrored robot's URDF joint names."""
    command_joint_order: list[str] = field(default_factory=list)
    """Hardware: joint order the command controller expects; empty means ``joint_names``."""
    joint_position_scale: list[float] = field(default_factory=list)
    """Hardware: per joint (model order), driver position = scale * model position + offset;
    empty means 1."""
    joint_position_offset: list[float] = field(default_factory=list)
    """Hardware: per joint offset in that mapping; empty means 0."""
    command_interface: str = "forward_command"
    """Hardware: ``forward_command`` (std_msgs/Float64MultiArray of joint positions, the
    ros2_control forward-command convention) or ``trajectory`` (trajectory_msgs/JointTrajectory)."""
    command_topic: str = "forward_position_controller/commands"
    """Hardware: where joint position commands go (relative name)."""
    joint_states_topic: str = "joint_states"
    """Hardware: the driver's sensor_msgs/JointState topic (relative name)."""
    imu_topic: str = "imu"
    """Hardware, legged robots: the sensor_msgs/Imu topic giving the base orientation and angular
    velocity (the IMU frame taken as the base frame). Observations wait for it."""
    odometry_topic: str = ""
    """Hardware, legged robots: a state estimator's nav_msgs/Odometry (base position, and linear
    velocity in the base frame); empty: none, the base linear velocity term reads 0."""
    control_rate_hz: float = 0.0
    """Hardware: observations per second; 0 means the env's control rate."""
    trajectory_time_from_start: float = 0.1
    """Hardware, trajectory interface: seconds the single trajectory point is given to be reached."""

    def __post_init__(self) -> None:
        if self.backend not in ("pybullet", "hardware"):
            raise ValueError(f"backend must be 'pybullet' or 'hardware', got {self.backend!r}")
        if self.command_interface not in ("forward_command", "trajectory"):
            raise ValueError("command_interface must be 'forward_command' or 'trajectory'")
        if self.joint_names:  # else the model's names, checked once the node knows them (JointMap)
            check_joint_map_lengths(self.joint_names, self.joint_position_scale, self.joint_position_offset,
                                    self.command_joint_order)
        if self.command_timeout < 0 or self.control_rate_hz < 0 or self.max_steps < 0:
            raise ValueError("command_timeout, control_rate_hz and max_steps must be >= 0")


@dataclass
class PolicyServerConfig:
    """policy_server: observation → action, and the get_action service."""

    policy_file: str = ""
    """Policy to serve from the start (``path/policy`` or ``.json``); empty: wait for weights."""
    deterministic: bool = False
    """Act with the mean / mode action on the observation topic (deployment); False samples
    (training). The service chooses per request."""
    hot_swap: bool = True
    """Replace the policy whenever newer weights arrive on policy_weights."""
    warmup_uniform: bool = True
    """While serving version 0 (the learner's untrained initialisation) and sampling, act
    uniformly within the action bounds, like the embedded trainer's warm-up."""
    torch_threads: int = 1
    """Intra-op threads for torch (one is fastest for small networks)."""
    seed: int = 0
    """Seeds action sampling."""


@dataclass
class SafetyShieldConfig:
    """safety_shield: node settings besides the shield's own (the fields of
    :class:`drl_ros.core.shield.ShieldConfig`, declared as parameters of the same names).

    Two modes. **Joint mode** (``urdf`` set): limits from the robot's URDF, state from
    joint_states (and imu for roll / pitch bounds), a command every ``control_period``.
    **Action mode** (no ``urdf``, the default): the policy's env actions are shielded as they
    are, one command per action (simulation lock-step): each action dimension is bounded by
    ``action_low`` / ``action_high``, NaN / inf / wrong dimensions give the fallback (zero: hold
    still for displacement actions), and the e-stop and lifecycle apply."""

    action_low: list[float] = field(default_factory=lambda: [-1.0, -1.0, -1.0])
    """Action mode: lower action bounds, one per dimension (env units), ``-action_high``."""
    action_high: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    """Action mode: upper action bounds, one per dimension (env units)."""
    config_file: str = ""
    """A shield YAML file (``config/shield/*.yaml``, the ShieldConfig fields): its values replace
    the parameters' defaults, and parameters set on the node override them; empty: none."""
    urdf_dir: str = ""
    """Directory a relative ``urdf`` path is resolved against (empty: pybullet_data's, where the
    robots of drl_ros's envs live)."""
    diagnostics_period: float = 1.0
    """Seconds between diagnostic_msgs/DiagnosticArray messages on /diagnostics."""

    def __post_init__(self) -> None:
        if len(self.action_low) != len(self.action_high) or not self.action_low:
            raise ValueError("action_low and action_high need the same, non-zero length")
        if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError("action_low must be <= action_high")
        if not self.diagnostics_period > 0:
            raise ValueError("diagnostics_period must be positive")


@dataclass
class ExperienceCollectorConfig:
    """experience_collector: observations (with the applied actions) → experience batches."""

    batch_size: int = 32
    """Transitions per ExperienceBatch."""
    flush_on_episode_end: bool = True
    """Publish a partial batch when an episode ends, so the learner sees whole episodes early."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


@dataclass
class LearnerConfig:
    """learner: experience → updates → versioned weights (latched) and training stats."""

    config: str = "kuka_reach"
    """Run configuration: a YAML file or an embedded config name (algorithm, hyperparameters, env)."""
    overrides: list[str] = field(default_factory=list)
    """``field=value`` overrides of the run configuration, as ``drl-ros train --set``."""
    run_dir: str = ""
    """Where checkpoints and the final policy go; empty: no files."""
    publish_every_updates: int = 200
    """Gradient updates between weight publications."""
    stats_period: float = 0.25
    """Seconds between training statistics messages (simulators pace themselves on them)."""
    update_slice: float = 0.05
    """Seconds of updates per timer tick before the node looks at its queues again."""
    checkpoint_every_updates: int = 0
    """Updates between atomic checkpoints in run_dir (model, optimizers, replay buffer,
    normalizer, RNG, counters); 0: only when the node stops."""
    resume: bool = True
    """Resume from the checkpoint in run_dir when there is one (a learner restarted after a crash
    carries on); False starts afresh and overwrites it."""

    def __post_init__(self) -> None:
        if self.publish_every_updates < 1 or self.stats_period <= 0 or self.update_slice <= 0:
            raise ValueError("publish_every_updates, stats_period and update_slice must be positive")


@dataclass
class SimDriverConfig:
    """sim_driver: a PyBullet robot behind a ros2_control-like driver's topics (mock hardware)."""

    robot: str = "kuka"
    """The simulated robot: ``kuka`` (iiwa arm), ``a1`` or ``laikago`` (quadrupeds on a floor,
    which also publish an IMU and odometry)."""
    joint_names: list[str] = field(default_factory=list)
    """Names published in joint_states, in the robot's joint order (base to tip; a quadruped's
    FR, FL, RR, RL legs, hip, thigh, knee); empty: the URDF's names."""
    command_topic: str = "forward_position_controller/commands"
    """Float64MultiArray joint position commands, in ``joint_names`` order."""
    trajectory_topic: str = "joint_trajectory_controller/joint_trajectory"
    """JointTrajectory commands (the last point's positions are tracked)."""
    physics_hz: float = 240.0
    """Physics rate (simulated in real time)."""
    publish_hz: float = 100.0
    """joint_states messages per second."""
    imu_topic: str = "imu"
    """Quadrupeds: sensor_msgs/Imu of the base (orientation, angular velocity, linear
    acceleration; frame = base)."""
    odometry_topic: str = "odom"
    """Quadrupeds: nav_msgs/Odometry of the base (perfect state estimation); empty: off."""
    ground_truth_topic: str = ""
    """Publish the simulated robot's own observation terms (drl_ros/Observation, the env robot's
    ``get_obs()``, stamped like the joint_states of the same tick), for checking a bridge against
    the simulator; empty: off."""

    def __post_init__(self) -> None:
        if self.robot not in ("kuka", "a1", "laikago"):
            raise ValueError(f"robot must be 'kuka', 'a1' or 'laikago', got {self.robot!r}")
