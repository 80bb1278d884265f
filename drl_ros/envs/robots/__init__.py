"""Robots that live in an injected PyBulletSim."""

from drl_ros.envs.robots.base import Robot
from drl_ros.envs.robots.kuka_iiwa import (
    KUKA_DOWN_ORIENTATION,
    KUKA_REST_POSE,
    ControlMode,
    KukaIiwa,
)

__all__ = ["KUKA_DOWN_ORIENTATION", "KUKA_REST_POSE", "ControlMode", "KukaIiwa", "Robot"]
