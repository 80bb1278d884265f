"""gym_bridge: a robot as a Gymnasium env on ROS topics and services.

Backends:
  * ``pybullet``: the simulated env. With ``step_on_command`` every command that answers the
    current observation advances one control step and publishes the next observation (the
    training loop runs as fast as its nodes); /clock carries the simulated time.
  * ``hardware``: a robot's ROS driver. joint_states (sensor_msgs/JointState) are mirrored into
    the env's robot model, and for a legged robot the base state too: orientation and angular
    velocity from imu (sensor_msgs/Imu), position and linear velocity from an optional state
    estimator's odometry (nav_msgs/Odometry); at the control rate an observation is published,
    stamped with the time its joint_states were measured; each command is
    turned into joint position targets (inverse kinematics for end-effector actions, as in
    simulation) and sent to the driver as std_msgs/Float64MultiArray (ros2_control forward
    command) or trajectory_msgs/JointTrajectory, with the configured joint names, order, scaling.

Topics (relative): observation (drl_ros/Observation) out, command (drl_ros/Action, from
safety_shield) in. Services: reset_env (drl_ros/ResetEnv), step_env (drl_ros/StepEnv; lock-step
clients, simulation only).
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from nav_msgs.msg import Odometry
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from drl_ros.core.config import EnvConfig
from drl_ros.msg import Action, Observation, TrainingStats
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import GymBridgeConfig
from drl_ros.ros.conversions import check_vector, from_array, to_f32_array
from drl_ros.ros.hardware import BaseState, JointMap, KinematicMirror
from drl_ros.ros.lifecycle import autostart, declare_autostart
from drl_ros.ros.parameters import declare_config
from drl_ros.runtime.env_factory import make_env
from drl_ros.srv import ResetEnv, StepEnv


class GymBridge(LifecycleNode):
    def __init__(self, node_name: str = "gym_bridge", *, observation_qos: QoSProfile = qos.OBSERVATION,
                 command_qos: QoSProfile = qos.COMMAND, sensor_qos: QoSProfile = qos.SENSOR,
                 clock_qos: QoSProfile = qos.CLOCK, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, GymBridgeConfig)
        # Timers pace work and watch liveness in wall time: with use_sim_time, a ROS-time timer
        # would wait for /clock, which only advances once the loop runs (a deadlock at start).
        self._steady = RclpyClock(clock_type=ClockType.STEADY_TIME)
        self._qos = (observation_qos, command_qos, sensor_qos, clock_qos)
        self.env: Any = None
        self._active = False
        # Sequences count within a session; a restarted bridge starts a new one, so consumers
        # never pair its observations with its predecessor's.
        self.session = secrets.randbits(63) + 1
        self._seq = 0
        self._episode = 0
        self._step = 0
        self._total_steps = 0
        self._last_msg: Observation | None = None
        self._last_publish = 0.0
        self._sim_time_ns = 0
        self._rng = np.random.default_rng(self.config.seed)
        # Recent joint_states, imu and odometry samples as (stamp in ns, value): an observation pairs
        # the joint and base states measured at the same time, whatever order they arrive in.
        self._joints: deque[tuple[int, tuple[np.ndarray, np.ndarray]]] = deque(maxlen=16)
        self._imu: deque[tuple[int, BaseState]] = deque(maxlen=16)
        self._odometry: deque[tuple[int, tuple[np.ndarray, np.ndarray]]] = deque(maxlen=16)
        self._applied: tuple[np.ndarray, float, int] | None = None
        self._last_applied_seq = 0
        self._deferred: Action | None = None
        self._pending_updates = 0
        self._stats_time = 0.0
        if declare_autostart(self):
            autostart(self)

    @property
    def hardware(self) -> bool:
        return self.config.backend == "hardware"

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.env = make_env(EnvConfig(id=self.config.env_id, kwargs=dict(self.config.env_kwargs)),
                                render_mode=(self.config.render_mode or None) if not self.hardware else None)
        except (ValueError, TypeError, RuntimeError) as error:
            self.get_logger().error(f"cannot make env {self.config.env_id!r}: {error}")
            return TransitionCallbackReturn.FAILURE
        self.action_dim = int(np.prod(self.env.action_space.shape))
        self.control_dt = float(getattr(self.env.unwrapped, "sim").control_dt)
        observation_qos, command_qos, sensor_qos, clock_qos = self._qos
        self._obs_pub = self.create_lifecycle_publisher(Observation, "observation", observation_qos)
        self._command_sub = self.create_subscription(Action, "command", self._on_command, command_qos)
        self._reset_srv = self.create_service(ResetEnv, "reset_env", self._on_reset_service)
        self._step_srv = self.create_service(StepEnv, "step_env", self._on_step_service)
        self._timers = []
        if self.hardware:
            try:
                self.mirror = KinematicMirror(self.env)
                self.joint_map = JointMap.from_config(self.config, self.mirror.joint_names)
            except (ValueError, AttributeError) as error:
                self.get_logger().error(f"hardware backend: {error}")
                return TransitionCallbackReturn.FAILURE
            self._joint_sub = self.create_subscription(JointState, self.config.joint_states_topic,
                                                       self._on_joint_state, sensor_qos)
            if self.mirror.legged:
                self._imu_sub = self.create_subscription(Imu, self.config.imu_topic, self._on_imu, sensor_qos)
                if self.config.odometry_topic:
                    self._odom_sub = self.create_subscription(Odometry, self.config.odometry_topic,
                                                              self._on_odometry, sensor_qos)
                else:
                    self.get_logger().warn("legged robot without odometry_topic: the base linear velocity "
                                           "term of the observation reads 0")
            if self.config.command_interface == "trajectory":
                self._driver_pub = self.create_publisher(JointTrajectory, self.config.command_topic, command_qos)
            else:
                self._driver_pub = self.create_publisher(Float64MultiArray, self.config.command_topic, command_qos)
            rate = self.config.control_rate_hz or 1.0 / self.control_dt
            self._timers.append(self.create_timer(1.0 / rate, self._on_hardware_tick, clock=self._steady))
            self.mirror.new_goal(self._rng)
        else:
            self._clock_pub = (self.create_publisher(Clock, "/clock", clock_qos)
                               if self.config.publish_clock else None)
            if self.config.command_timeout > 0:
                self._timers.append(self.create_timer(self.config.command_timeout / 2, self._on_watchdog,
                                                      clock=self._steady))
            if self.config.max_pending_updates > 0:
                self._stats_sub = self.create_subscription(TrainingStats, "training_stats", self._on_stats,
                                                           command_qos)
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self._active = True
        if not self.hardware and self.config.step_on_command:
            obs, info = self.env.reset(seed=self.config.seed)
            self._start_episode()
            self._publish(obs, info)
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        for timer in self._timers:
            self.destroy_timer(timer)
        self.close()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_shutdown(state)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    # -- observations -------------------------------------------------------------------------
    def _start_episode(self) -> None:
        self._episode += 1
        self._step = 0

    def _publish(self, obs: np.ndarray, info: dict[str, Any], step: tuple | None = None,
                 stamp: Time | None = None) -> Observation:
        """Publish ``obs``; ``step`` is ``(action, log_prob, version, reward, terminated, truncated,
        final_obs)`` of the step that led here, None after a reset. ``stamp``: when the observed
        state was measured (hardware); None: now."""
        self._seq += 1
        msg = Observation()
        msg.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        msg.session = self.session
        msg.sequence = self._seq
        msg.episode = self._episode
        msg.step = self._step
        msg.observation = to_f32_array(obs)
        msg.is_success = bool(info.get("is_success", False))
        msg.action_log_prob = math.nan
        msg.action_policy_version = -1
        if step is not None:
            action, log_prob, version, reward, terminated, truncated, final_obs = step
            msg.has_previous_step = True
            msg.action = to_f32_array(action)
            msg.action_log_prob = float(log_prob)
            msg.action_policy_version = int(version)
            msg.reward = float(reward)
            msg.terminated = bool(terminated)
            msg.truncated = bool(truncated)
            if final_obs is not None:
                msg.final_observation = to_f32_array(final_obs)
        self._last_msg = msg
        self._last_publish = time.monotonic()
        self._obs_pub.publish(msg)
        return msg

    def _publish_clock(self) -> None:
        if getattr(self, "_clock_pub", None) is not None:
            ns = self._sim_time_ns
            self._clock_pub.publish(Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))

    # -- simulation ---------------------------------------------------------------------------
    def _on_command(self, msg: Action) -> None:
        if not self._active or not self._command_is_current(msg.sequence):
            return  # stale or duplicate: it answers an observation the robot has moved on from
        action = from_array(msg.action)
        reason = check_vector(action, self.action_dim, "command")
        if reason is not None:
            self.get_logger().warn(f"ignoring command {msg.sequence}: {reason}", throttle_duration_sec=5.0)
            return
        if self.hardware:
            self._send_to_driver(action, msg.log_prob, msg.policy_version)
            return
        if not self.config.step_on_command:
            return
        if self.config.max_steps and self._total_steps >= self.config.max_steps:
            return
        if self._learner_busy():
            self._deferred = msg  # applied by _on_stats once the learner has caught up
            return
        self._apply(action, msg)

    def _learner_busy(self) -> bool:
        # Stale statistics (a learner that stopped) must not freeze the simulation.
        return (self.config.max_pending_updates > 0 and self._pending_updates > self.config.max_pending_updates
                and time.monotonic() - self._stats_time < 5.0)

    def _on_stats(self, msg: TrainingStats) -> None:
        self._pending_updates = int(msg.pending_updates)
        self._stats_time = time.monotonic()
        deferred, self._deferred = self._deferred, None
        if deferred is not None and deferred.sequence == self._seq:
            if self._learner_busy():
                self._deferred = deferred
            else:
                self._apply(from_array(deferred.action), deferred)

    def _apply(self, action: np.ndarray, msg: Action) -> None:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        self._total_steps += 1
        self._sim_time_ns += int(round(self.control_dt * 1e9))
        final_obs = None
        if terminated or truncated:
            final_obs = obs
            obs, reset_info = self.env.reset()
            info = {**reset_info, "is_success": info.get("is_success", False)}
            self._start_episode()
        self._publish_clock()
        self._publish(obs, info, (action, msg.log_prob, msg.policy_version, reward, terminated, truncated,
                                  final_obs))

    def _command_is_current(self, sequence: int) -> bool:
        if not self.hardware:
            return sequence == self._seq
        # A robot publishes at its own rate, so the newest observation may already be one tick
        # ahead of the one the command answers; anything older, or already applied, is dropped.
        if sequence <= self._last_applied_seq or sequence < self._seq - 1:
            return False
        self._last_applied_seq = sequence
        return True

    def _on_watchdog(self) -> None:
        if self._deferred is not None and not self._learner_busy():
            deferred, self._deferred = self._deferred, None
            if deferred.sequence == self._seq:
                self._apply(from_array(deferred.action), deferred)
            return
        if (self._active and self.config.step_on_command and self._last_msg is not None
                and self._deferred is None
                and time.monotonic() - self._last_publish > self.config.command_timeout
                and not (self.config.max_steps and self._total_steps >= self.config.max_steps)):
            self._last_publish = time.monotonic()
            self._obs_pub.publish(self._last_msg)

    def _on_reset_service(self, request: ResetEnv.Request, response: ResetEnv.Response) -> ResetEnv.Response:
        if not self._active:
            response.success, response.message = False, "gym_bridge is not active"
            return response
        if self.hardware:
            self.mirror.new_goal(self._rng)
            self._start_episode()
            response.success, response.message = True, "new goal; the robot stays where it is"
            return response
        if request.seeded and request.seed < 0:
            # Gymnasium's seeding refuses negative seeds with an exception: answer, never crash.
            response.success, response.message = False, f"seed must be >= 0, got {request.seed}"
            return response
        obs, info = self.env.reset(seed=int(request.seed) if request.seeded else None)
        self._start_episode()
        response.success = True
        response.observation = to_f32_array(obs)
        response.is_success = bool(info.get("is_success", False))
        if self.config.step_on_command:
            response.sequence = self._publish(obs, info).sequence
        return response

    def _on_step_service(self, request: StepEnv.Request, response: StepEnv.Response) -> StepEnv.Response:
        if not self._active or self.hardware:
            response.success = False
            response.message = ("gym_bridge is not active" if not self._active
                                else "step_env is for simulation; a robot steps in real time")
            return response
        action = from_array(request.action)
        reason = check_vector(action, self.action_dim, "action")
        if reason is not None:
            response.success, response.message = False, reason
            return response
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        self._sim_time_ns += int(round(self.control_dt * 1e9))
        self._publish_clock()
        response.success = True
        response.observation = to_f32_array(obs)
        response.reward = float(reward)
        response.terminated = bool(terminated)
        response.truncated = bool(truncated)
        response.is_success = bool(info.get("is_success", False))
        return response

    # -- hardware -----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        state = self.joint_map.model_state(list(msg.name), msg.position, msg.velocity)
        if state is None:
            self.get_logger().warn("joint_states without every configured joint or with non-finite values",
                                   throttle_duration_sec=5.0)
            return
        self._joints.append((_nanoseconds(msg.header.stamp), state))

    def _on_imu(self, msg: Imu) -> None:
        o, w = msg.orientation, msg.angular_velocity
        base = BaseState.from_imu((o.x, o.y, o.z, o.w), (w.x, w.y, w.z))
        if base is None:
            self.get_logger().warn("imu without a finite orientation quaternion and angular velocity",
                                   throttle_duration_sec=5.0)
            return
        self._imu.append((_nanoseconds(msg.header.stamp), base))

    def _on_odometry(self, msg: Odometry) -> None:
        p, v = msg.pose.pose.position, msg.twist.twist.linear
        position, velocity = np.array([p.x, p.y, p.z]), np.array([v.x, v.y, v.z])
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(velocity))):
            self.get_logger().warn("odometry with non-finite values", throttle_duration_sec=5.0)
            return
        self._odometry.append((_nanoseconds(msg.header.stamp), (position, velocity)))

    def _hardware_state_ready(self) -> bool:
        if not self._joints:
            return False
        if self.mirror.legged:
            return bool(self._imu) and (not self.config.odometry_topic or bool(self._odometry))
        return True

    def _measured_state(self) -> tuple[int, tuple[np.ndarray, np.ndarray], BaseState | None]:
        """``(stamp, (q, qd), base)``: the newest time every stream has reached, and each
        stream's sample closest to it (the newest samples where a driver leaves stamps at zero).
        Pairing by stamp keeps one tick's joints with the same tick's IMU even when the IMU
        message is taken after the joint_states message (an approximate-time synchronizer)."""
        streams: list[deque] = [self._joints]
        if self.mirror.legged:
            streams += [self._imu] + ([self._odometry] if self._odometry else [])
        at = min(stream[-1][0] for stream in streams)
        stamp, joints = _closest(self._joints, at)
        if not self.mirror.legged:
            return stamp, joints, None
        _, imu = _closest(self._imu, at)
        base = BaseState(imu.orientation, imu.angular_velocity)
        if self._odometry:
            _, (base.position, base.linear_velocity) = _closest(self._odometry, at)
        return stamp, joints, base

    def _on_hardware_tick(self) -> None:
        if not self._active or not self._hardware_state_ready():
            return
        stamp, joints, base = self._measured_state()
        self.mirror.sync(*joints, base)
        if self._applied is not None:
            # Before observing: the observation carries the gait phase of the next action.
            self.mirror.control_step_done()
        obs, reward, success = self.mirror.observe()
        info = {"is_success": success}
        step = None
        if self._applied is not None:
            action, log_prob, version = self._applied
            self._applied = None
            self._step += 1
            # A fallen legged robot ends the MDP, as in simulation; someone must stand it up.
            terminated = self.mirror.fallen()
            truncated = not terminated and self._step >= self.env.unwrapped.max_episode_steps
            final_obs = None
            if terminated or truncated:
                final_obs = obs
                self.mirror.new_goal(self._rng)
                self._start_episode()
                obs, _, _ = self.mirror.observe()
            step = (action, log_prob, version, reward, terminated, truncated, final_obs)
        self._publish(obs, info, step, stamp=Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
                      if stamp else None)

    def _send_to_driver(self, action: np.ndarray, log_prob: float, version: int) -> None:
        if not self._hardware_state_ready():
            return
        _, joints, base = self._measured_state()
        self.mirror.sync(*joints, base)
        positions = self.joint_map.driver_command(self.mirror.joint_targets(action))
        if self.config.command_interface == "trajectory":
            point = JointTrajectoryPoint(positions=positions)
            seconds = self.config.trajectory_time_from_start
            point.time_from_start = Duration(sec=int(seconds), nanosec=int((seconds % 1) * 1e9))
            self._driver_pub.publish(JointTrajectory(joint_names=list(self.joint_map.command_order), points=[point]))
        else:
            self._driver_pub.publish(Float64MultiArray(data=positions))
        self._applied = (action, log_prob, version)


def _nanoseconds(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _closest(samples: deque, at: int) -> Any:
    """The ``(stamp, value)`` sample nearest ``at`` (the newest of equally near ones, and the
    newest when the stream is unstamped)."""
    if samples[-1][0] == 0 or at == 0:
        return samples[-1]
    return min(reversed(samples), key=lambda sample: abs(sample[0] - at))


def main(args: list[str] | None = None) -> int:
    return run_node(GymBridge, args)


if __name__ == "__main__":
    raise SystemExit(main())
