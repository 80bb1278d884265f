"""Helpers shared by the managed (lifecycle) nodes: gym_bridge, policy_server, safety_shield."""

from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn


def declare_autostart(node: LifecycleNode) -> bool:
    return bool(node.declare_parameter(
        "autostart", True,
        ParameterDescriptor(description="Configure and activate at start-up; false leaves the transitions "
                                        "to a lifecycle manager (commands flow only while active)."),
    ).value)


def autostart(node: LifecycleNode) -> None:
    """configure → activate, as a lifecycle manager would; stops at the first failed transition."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("configure failed; staying unconfigured")
        return
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("activate failed; staying inactive")
