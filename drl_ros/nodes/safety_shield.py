"""safety_shield: the last check every command passes before it reaches the robot.

A thin lifecycle node around :class:`drl_ros.core.shield.SafetyShield` (the pipeline: limits
from the URDF tightened in YAML, brake before a limit, workspace box, roll / pitch bounds,
non-finite and wrong-sized input rejected, watchdog, latching e-stop, reasons and cost). Like
nav2's collision monitor it is a separate stage in the command chain, configured from YAML, and
usable in front of any controller. Its parameters are the fields of
:class:`~drl_ros.core.shield.ShieldConfig` (read-only, dotted names: ``watchdog.action_timeout``,
``limits.<joint>.velocity``; see :mod:`drl_ros.ros.shield`) and of
:class:`~drl_ros.ros.configs.SafetyShieldConfig`.

Joint mode (``urdf`` set): a command every ``control_period`` (steady clock), from the latest
state and action. Topics (relative): raw_action (drl_ros/Action), joint_states
(sensor_msgs/JointState, sensor QoS) and, with roll / pitch bounds, imu (sensor_msgs/Imu) in;
joint_command (std_msgs/Float64MultiArray, the ros2_control forward-command convention: remap it
to the controller's commands topic) every step; command (drl_ros/Action: the applied action,
once per new action) out. With actions in the interface's units (``normalized_actions`` false)
joint_target (std_msgs/Float64MultiArray) is an input too: the shield then sits between any
controller that publishes forward commands and the robot's.

Action mode (no ``urdf``, the default; simulation lock-step): each raw_action is shielded at once
and answered on command with the same sequence; the action dimensions are bounded by
``action_low`` / ``action_high`` and the fallback is zero (hold still).

Both: shield_status (drl_ros/ShieldStatus) every step; /diagnostics
(diagnostic_msgs/DiagnosticArray) every ``diagnostics_period``; services estop and reset
(std_srvs/Trigger; reset answers success=false with the reason while a cause persists).
Inactive (configured, not active) the shield keeps publishing, and every command is the
fallback: its publishers are deliberately not lifecycle-managed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from drl_ros.core.shield import (
    JointLimitsOverride,
    LimitsError,
    Reason,
    RobotState,
    ShieldOutput,
    load_shield_config,
)
from drl_ros.core.shield import SafetyShield as ShieldCore
from drl_ros.msg import Action, ShieldStatus
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import SafetyShieldConfig
from drl_ros.ros.conversions import from_array, to_f32_array, to_f64_list
from drl_ros.ros.lifecycle import autostart, declare_autostart
from drl_ros.ros.parameters import declare_config
from drl_ros.ros.shield import action_space_limits, declare_shield_config, diagnostic_status, robot_state

_NON_FINITE = frozenset({Reason.NON_FINITE_ACTION, Reason.NON_FINITE_STATE})


def _default_urdf_dir() -> str:
    import pybullet_data  # only where a relative urdf names one of drl_ros's robots

    return pybullet_data.getDataPath()


class SafetyShield(LifecycleNode):
    def __init__(self, node_name: str = "safety_shield", *, action_qos: QoSProfile = qos.COMMAND,
                 state_qos: QoSProfile = qos.SENSOR, status_qos: QoSProfile = qos.STATUS, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, SafetyShieldConfig)
        defaults = load_shield_config(self.config.config_file) if self.config.config_file else None
        self.shield_config, self.urdf = declare_shield_config(self, self.config.urdf_dir or _default_urdf_dir,
                                                              defaults)
        self.joint_mode = self.urdf is not None
        # The watchdog and the control tick run on the steady clock: sim time stops when the
        # simulation does, and wall time can jump.
        self._steady = RclpyClock(clock_type=ClockType.STEADY_TIME)
        self._qos = (action_qos, state_qos, status_qos)
        self.shield: ShieldCore | None = None
        self._state_time = -math.inf
        self._action_time = -math.inf
        self._action: Action | None = None
        self._answered_sequence: int | None = None
        self._imu: tuple[np.ndarray, float] | None = None
        self._window = self._new_window()
        self._entities: list[Any] = []
        if declare_autostart(self):
            autostart(self)

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.shield = self._build_core()
        except (LimitsError, ValueError, OSError) as error:
            self.get_logger().error(f"cannot build the shield: {error}")
            return TransitionCallbackReturn.FAILURE
        self.shield.deactivate()  # fallback until activated
        action_qos, state_qos, status_qos = self._qos
        self._command_pub = self.create_publisher(Action, "command", action_qos)
        self._status_pub = self.create_publisher(ShieldStatus, "shield_status", status_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", status_qos)
        self._entities = [self._command_pub, self._status_pub, self._diagnostics_pub,
                          self.create_subscription(Action, "raw_action", self._on_action, action_qos),
                          self.create_service(Trigger, "estop", self._on_estop),
                          self.create_service(Trigger, "reset", self._on_reset),
                          self.create_timer(self.config.diagnostics_period, self._on_diagnostics,
                                            clock=self._steady)]
        self._joint_pub = None
        if self.joint_mode:
            self._joint_pub = self.create_publisher(Float64MultiArray, "joint_command", action_qos)
            self._entities += [self._joint_pub,
                               self.create_subscription(JointState, "joint_states", self._on_joint_state, state_qos),
                               self.create_timer(self.shield.dt, self._on_tick, clock=self._steady)]
            if not self.shield_config.normalized_actions:
                # Commands in the interface's units from any controller (the forward-command
                # convention), as an alternative to raw_action.
                self._entities.append(self.create_subscription(Float64MultiArray, "joint_target",
                                                               self._on_joint_target, action_qos))
            if self.shield_config.orientation is not None:
                self._entities.append(self.create_subscription(Imu, "imu", self._on_imu, state_qos))
        mode = (f"joint mode: {self.shield.n} joints from {self.urdf}, {self.shield.interface} interface, "
                f"{1.0 / self.shield.dt:g} Hz" if self.joint_mode else f"action mode: {self.shield.n} action dimensions")
        self.get_logger().info(f"shield configured ({mode})")
        return super().on_configure(state)

    def _build_core(self) -> ShieldCore:
        if self.joint_mode:
            return ShieldCore.from_config(dataclasses.replace(self.shield_config, urdf=self.urdf))
        # Action mode: each dimension is a velocity-like command with no position, no measured
        # state and no state faults; only the watchdog's timing and the e-stop carry over.
        config = dataclasses.replace(self.shield_config, urdf=None, joints=None, interface="velocity",
                                     normalized_actions=False, default_limits=JointLimitsOverride(), limits={},
                                     workspace=None, orientation=None, max_tracking_error=None, latch_on=[])
        return ShieldCore(config, action_space_limits(self.config.action_low, self.config.action_high))

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self.shield is not None
        self.shield.activate()
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        if self.shield is not None:
            self.shield.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        if self.shield is not None:
            self.shield.deactivate()
        return super().on_shutdown(state)

    def _teardown(self) -> None:
        for entity in self._entities:
            destroy = {"Publisher": self.destroy_publisher, "Subscription": self.destroy_subscription,
                       "Service": self.destroy_service, "Timer": self.destroy_timer}[type(entity).__name__]
            destroy(entity)
        self._entities = []
        self.shield = None

    # -- inputs -------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    def _on_action(self, msg: Action) -> None:
        if self.shield is None:
            return
        now = self._now()
        self._action, self._action_time = msg, now
        self.shield.propose(from_array(msg.action).astype(np.float64), now)
        if not self.joint_mode:
            # No measured state in action mode: the step is checked on the action alone.
            self.shield.observe(self._rest_state(), now)
            self._state_time = now
            self._step(now)

    def _on_joint_target(self, msg: Float64MultiArray) -> None:
        if self.shield is None:
            return
        now = self._now()
        self._action_time = now
        self.shield.propose(np.asarray(msg.data, dtype=np.float64), now)

    def _rest_state(self) -> RobotState:
        assert self.shield is not None
        return RobotState(positions=np.zeros(self.shield.n), velocities=np.zeros(self.shield.n))

    def _on_joint_state(self, msg: JointState) -> None:
        if self.shield is None:
            return
        now = self._now()
        orientation = None
        if self.shield_config.orientation is not None and self._imu is not None:
            values, received = self._imu
            # A stale IMU reading leaves the orientation unknown: the core refuses the state.
            if now - received <= self.shield_config.watchdog.observation_timeout:
                orientation = values
        state, problem = robot_state(self.shield.limits.names, msg.name, msg.position, msg.velocity, msg.effort,
                                     orientation)
        if problem is not None:
            self.get_logger().warn(f"unusable joint_states: {problem}", throttle_duration_sec=5.0)
        self.shield.observe(state, now)
        self._state_time = now

    def _on_imu(self, msg: Imu) -> None:
        q = msg.orientation
        self._imu = (np.array([q.x, q.y, q.z, q.w], dtype=np.float64), self._now())

    # -- control step -------------------------------------------------------------------------
    def _on_tick(self) -> None:
        self._step(self._now())

    def _step(self, now: float) -> None:
        assert self.shield is not None
        start = time.perf_counter()
        out = self.shield.step(now)
        step_seconds = time.perf_counter() - start
        stamp = self.get_clock().now().to_msg()
        if out.command is not None and self._joint_pub is not None:
            self._joint_pub.publish(Float64MultiArray(data=to_f64_list(out.command)))
        action = self._action
        new_action = action is not None and action.sequence != self._answered_sequence
        applied = self._applied_action(out)
        if action is not None and applied is not None and (new_action or not self.joint_mode):
            self._answered_sequence = action.sequence
            command = Action()
            command.header.stamp = stamp
            command.header.frame_id = action.header.frame_id
            command.sequence = action.sequence
            command.action = to_f32_array(applied)
            command.log_prob = action.log_prob if not out.interventions else math.nan
            command.policy_version = action.policy_version
            command.deterministic = action.deterministic
            self._command_pub.publish(command)
            if not out.fallback:
                self._window["action_latency"].append(self._now() - self._action_time)
        self._status_pub.publish(self._status(out, now, stamp))
        window = self._window
        window["steps"] += 1
        window["interventions"] += int(bool(out.interventions))
        window["fallbacks"] += int(out.fallback)
        window["step_latency"].append(step_seconds)

    def _applied_action(self, out: ShieldOutput) -> np.ndarray | None:
        """The command in the action's units, or None where it has none (a fallback of
        normalized actions: the fallback is a joint command, not an action)."""
        if self.joint_mode and self.shield_config.normalized_actions:
            return out.applied_action
        return out.command

    def _status(self, out: ShieldOutput, now: float, stamp: Any) -> ShieldStatus:
        assert self.shield is not None
        status = ShieldStatus()
        status.header.stamp = stamp
        status.step = self.shield.steps
        status.sequence = self._action.sequence if self._action is not None else 0
        status.active = self.shield.active
        status.estop = out.estop
        status.fallback = out.fallback
        status.intervened = bool(out.interventions)
        status.rejected_non_finite = bool(out.reasons & _NON_FINITE)
        status.clipped_dims = len({j for i in out.interventions for j in i.joints}) if not out.fallback else 0
        status.cost = float(out.cost)
        status.reason = "; ".join(i.message for i in out.interventions) or "ok"
        status.reasons = sorted(r.value for r in out.reasons)
        status.latched_causes = [r.value for r in self.shield.latched_causes]
        status.observation_age = now - self._state_time
        status.action_age = now - self._action_time
        status.interface = self.shield.interface
        status.command = [] if out.command is None else to_f64_list(out.command)
        return status

    # -- services -----------------------------------------------------------------------------
    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.shield is None:
            response.success, response.message = False, "the shield is not configured"
            return response
        self.shield.request_estop("requested on the estop service", self._now())
        self.get_logger().warn("e-stop latched on request")
        response.success = True
        response.message = "e-stop latched: every command is the fallback until a reset succeeds"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self.shield is None:
            response.success, response.message = False, "the shield is not configured"
            return response
        now = self._now()
        if not self.joint_mode:
            self.shield.observe(self._rest_state(), now)
        result = self.shield.reset_estop(now)
        if result.accepted:
            self.get_logger().info(result.message)
        else:
            self.get_logger().warn(result.message)
        response.success, response.message = result.accepted, result.message
        return response

    # -- diagnostics --------------------------------------------------------------------------
    @staticmethod
    def _new_window() -> dict[str, Any]:
        return {"steps": 0, "interventions": 0, "fallbacks": 0, "step_latency": [], "action_latency": []}

    def _on_diagnostics(self) -> None:
        if self.shield is None:
            return
        window, self._window = self._window, self._new_window()
        status = diagnostic_status(
            f"{self.get_fully_qualified_name()}: safety shield", self.urdf or "action mode",
            active=self.shield.active, latched={r.value: m for r, m in self.shield.latched_causes.items()},
            steps=self.shield.steps, window_steps=window["steps"], window_interventions=window["interventions"],
            window_fallbacks=window["fallbacks"], step_latency=window["step_latency"],
            action_latency=window["action_latency"], counts={r.value: c for r, c in self.shield.counts.items()})
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyShield, args)


if __name__ == "__main__":
    raise SystemExit(main())
