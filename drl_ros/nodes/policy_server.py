"""policy_server: observation → raw action with the current policy; the get_action service for
any ROS node; hot-swaps weights from the learner's latched policy_weights topic.

Topics (relative): observation (drl_ros/Observation) in, raw_action (drl_ros/Action) out,
policy_weights (drl_ros/PolicyWeights, latched) in. Service: get_action (drl_ros/GetAction).
Every action carries the version of the weights that chose it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import QoSProfile

from drl_ros.core.policy import Policy
from drl_ros.msg import Action, Observation, PolicyWeights
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import PolicyServerConfig
from drl_ros.ros.conversions import (
    check_vector,
    decode_policy,
    from_array,
    policy_from_payload,
    to_f32_array,
)
from drl_ros.ros.lifecycle import autostart, declare_autostart
from drl_ros.ros.parameters import declare_config
from drl_ros.srv import GetAction


class PolicyServer(LifecycleNode):
    def __init__(self, node_name: str = "policy_server", *, observation_qos: QoSProfile = qos.OBSERVATION,
                 action_qos: QoSProfile = qos.COMMAND, weights_qos: QoSProfile = qos.LATCHED, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, PolicyServerConfig)
        self._qos = (observation_qos, action_qos, weights_qos)
        self.policy: Policy | None = None
        self._rng = np.random.default_rng(self.config.seed)
        self._active = False
        self._waiting_logged = False
        if declare_autostart(self):
            autostart(self)

    # -- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        torch.set_num_threads(self.config.torch_threads)
        torch.manual_seed(self.config.seed)
        if self.config.policy_file:
            try:
                self._install(Policy.load(self.config.policy_file.removesuffix(".json")))
            except (OSError, ValueError) as error:
                self.get_logger().error(f"cannot load policy_file {self.config.policy_file!r}: {error}")
                return TransitionCallbackReturn.FAILURE
        observation_qos, action_qos, weights_qos = self._qos
        self._action_pub = self.create_lifecycle_publisher(Action, "raw_action", action_qos)
        self._obs_sub = self.create_subscription(Observation, "observation", self._on_observation, observation_qos)
        self._weights_sub = None
        if self.config.hot_swap:
            self._weights_sub = self.create_subscription(PolicyWeights, "policy_weights", self._on_weights,
                                                         weights_qos)
        self._service = self.create_service(GetAction, "get_action", self._on_get_action)
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_shutdown(state)

    def _teardown(self) -> None:
        for sub in (self._obs_sub, self._weights_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self.destroy_service(self._service)
        self.destroy_lifecycle_publisher(self._action_pub)
        self.policy = None

    # -- acting -------------------------------------------------------------------------------
    def _install(self, policy: Policy) -> None:
        previous = None if self.policy is None else self.policy.version
        self.policy = policy.eval()
        self.get_logger().info(f"serving policy version {policy.version}"
                               + ("" if previous is None else f" (was {previous})"))

    def act(self, obs: np.ndarray, deterministic: bool) -> tuple[np.ndarray, float, int]:
        """``(env action, log-prob, policy version)``; the caller has validated ``obs``."""
        policy = self.policy
        assert policy is not None
        if (not deterministic and self.config.warmup_uniform and policy.version == 0
                and not policy.discrete):
            action = policy.scale_action(self._rng.uniform(-1.0, 1.0, size=(1, policy.action_spec.dim)))
            return action[0].astype(np.float32), math.nan, 0
        step = policy.act(obs, deterministic=deterministic)
        return np.asarray(step.env_action[0], dtype=np.float32), float(step.log_prob[0]), policy.version

    def _why_not_ready(self) -> str | None:
        if not self._active:
            return "policy_server is not active"
        if self.policy is None:
            return "no policy yet: set policy_file or wait for policy_weights"
        return None

    def _on_observation(self, msg: Observation) -> None:
        reason = self._why_not_ready()
        if reason is None:
            obs = from_array(msg.observation)
            reason = check_vector(obs, self.policy.observation_spec.dim, "observation")
        if reason is not None:
            if not self._waiting_logged:
                self.get_logger().warn(f"dropping observation {msg.sequence}: {reason}")
                self._waiting_logged = True
            return
        self._waiting_logged = False
        action, log_prob, version = self.act(obs, self.config.deterministic)
        out = Action()
        out.header = msg.header
        out.sequence = msg.sequence
        out.action = to_f32_array(action)
        out.log_prob = log_prob
        out.policy_version = version
        out.deterministic = self.config.deterministic
        self._action_pub.publish(out)

    def _on_get_action(self, request: GetAction.Request, response: GetAction.Response) -> GetAction.Response:
        response.policy_version = -1 if self.policy is None else int(self.policy.version)
        reason = self._why_not_ready()
        if reason is None:
            obs = from_array(request.observation)
            reason = check_vector(obs, self.policy.observation_spec.dim, "observation")
        if reason is not None:
            response.success = False
            response.message = reason
            response.log_prob = math.nan
            return response
        action, log_prob, version = self.act(obs, request.deterministic)
        response.success = True
        response.action = to_f32_array(action)
        response.log_prob = log_prob
        response.policy_version = version
        return response

    def _on_weights(self, msg: PolicyWeights) -> None:
        if self.policy is not None and msg.version <= self.policy.version:
            return
        try:
            policy = policy_from_payload(decode_policy(msg.version, msg.metadata_json, msg.sha256,
                                                       bytes(msg.safetensors)))
        except (ValueError, KeyError, RuntimeError) as error:
            self.get_logger().error(f"ignoring policy weights version {msg.version}: {error}")
            return
        if self.policy is not None and (policy.observation_spec != self.policy.observation_spec
                                        or policy.action_spec != self.policy.action_spec):
            self.get_logger().error(f"ignoring policy weights version {msg.version}: its spaces differ "
                                    "from the served policy's")
            return
        self._install(policy)


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyServer, args)


if __name__ == "__main__":
    raise SystemExit(main())
