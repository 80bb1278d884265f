"""safety_shield: the gate every action passes before it reaches the robot.

Simple form (the full shield is its own component): clip to the action bounds, replace an action
holding NaN or inf by the safe fallback (clipping does not remove NaN), and output the fallback
while the node is not active or is e-stopped. The command publisher is deliberately not
lifecycle-managed, so that a deactivated shield keeps answering with its fallback.

Topics (relative): raw_action (drl_ros/Action) in; command (drl_ros/Action, the applied action)
and shield_status (drl_ros/ShieldStatus) out; optionally a Float64MultiArray forward command.
Services: estop (std_srvs/SetBool), reset (std_srvs/Trigger, clears the e-stop).
"""

from __future__ import annotations

import math

import numpy as np
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from drl_ros.msg import Action, ShieldStatus
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import SafetyShieldConfig
from drl_ros.ros.conversions import from_array, to_f32_array, to_f64_list
from drl_ros.ros.lifecycle import autostart, declare_autostart
from drl_ros.ros.parameters import declare_config


class SafetyShield(LifecycleNode):
    def __init__(self, node_name: str = "safety_shield", *, action_qos: QoSProfile = qos.COMMAND,
                 status_qos: QoSProfile = qos.STATUS, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, SafetyShieldConfig)
        self.low = np.asarray(self.config.action_low, dtype=np.float32)
        self.high = np.asarray(self.config.action_high, dtype=np.float32)
        self.fallback = (np.asarray(self.config.fallback_action, dtype=np.float32) if self.config.fallback_action
                         else np.zeros_like(self.low))
        self.fallback = np.clip(self.fallback, self.low, self.high)
        self._qos = (action_qos, status_qos)
        self._active = False
        self._estop = False
        self._sub = None
        if declare_autostart(self):
            autostart(self)

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        action_qos, status_qos = self._qos
        self._command_pub = self.create_publisher(Action, "command", action_qos)
        self._status_pub = self.create_publisher(ShieldStatus, "shield_status", status_qos)
        self._forward_pub = None
        if self.config.forward_command_topic:
            self._forward_pub = self.create_publisher(Float64MultiArray, self.config.forward_command_topic,
                                                      action_qos)
        self._sub = self.create_subscription(Action, "raw_action", self._on_action, action_qos)
        self._estop_srv = self.create_service(SetBool, "estop", self._on_estop)
        self._reset_srv = self.create_service(Trigger, "reset", self._on_reset)
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.destroy_subscription(self._sub)
        self.destroy_service(self._estop_srv)
        self.destroy_service(self._reset_srv)
        for pub in (self._command_pub, self._status_pub, self._forward_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._sub = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_shutdown(state)

    # -- filtering ------------------------------------------------------------------------------
    def filter(self, raw: np.ndarray) -> tuple[np.ndarray, ShieldStatus]:
        """The action to apply for ``raw`` and what was done to it."""
        status = ShieldStatus()
        status.active = self._active
        status.estop = self._estop
        if raw.shape != self.low.shape:
            out, status.reason = self.fallback, f"expected {self.low.size} values, got {raw.size}: fallback"
        elif not np.all(np.isfinite(raw)):
            out, status.reason = self.fallback, "non-finite values: fallback"
            status.rejected_non_finite = True
        elif self._estop:
            out, status.reason = self.fallback, "e-stop engaged: fallback"
        elif not self._active:
            out, status.reason = self.fallback, "shield inactive: fallback"
        else:
            out = np.clip(raw, self.low, self.high)
            status.clipped_dims = int(np.count_nonzero(out != raw))
            status.reason = "clipped to bounds" if status.clipped_dims else "ok"
        status.intervened = raw.shape != out.shape or not np.array_equal(raw, out)
        if raw.shape == out.shape and np.all(np.isfinite(raw)):
            status.cost = float(np.linalg.norm(raw - out))
        else:
            status.cost = math.inf
        return out.astype(np.float32), status

    def _on_action(self, msg: Action) -> None:
        raw = from_array(msg.action)
        out, status = self.filter(raw)
        command = Action()
        command.header = msg.header
        command.sequence = msg.sequence
        command.action = to_f32_array(out)
        command.log_prob = msg.log_prob if not status.intervened else math.nan
        command.policy_version = msg.policy_version
        command.deterministic = msg.deterministic
        self._command_pub.publish(command)
        if self._forward_pub is not None:
            self._forward_pub.publish(Float64MultiArray(data=to_f64_list(out)))
        status.header = msg.header
        status.sequence = msg.sequence
        self._status_pub.publish(status)

    def _on_estop(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._estop = bool(request.data)
        self.get_logger().warn(f"e-stop {'engaged' if self._estop else 'released'}")
        response.success = True
        response.message = "e-stop engaged" if self._estop else "e-stop released"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._estop = False
        response.success = True
        response.message = "e-stop cleared"
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(SafetyShield, args)


if __name__ == "__main__":
    raise SystemExit(main())
