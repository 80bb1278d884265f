"""gym_bridge's hardware joint map (ROS-free): driver names, order and scaling against the model's joints."""

import numpy as np
import pytest

from drl_ros.ros.configs import GymBridgeConfig
from drl_ros.ros.hardware import JointMap

MODEL = ["hip", "knee", "ankle"]


def test_empty_joint_names_mean_the_models_own_names():
    joint_map = JointMap.from_config(GymBridgeConfig(backend="hardware"), MODEL)
    assert joint_map.names == MODEL and joint_map.command_order == MODEL
    assert np.array_equal(joint_map.scale, np.ones(3)) and np.array_equal(joint_map.offset, np.zeros(3))


def test_driver_names_order_and_scaling_are_taken_as_configured():
    config = GymBridgeConfig(backend="hardware", joint_names=["j1", "j2", "j3"], command_joint_order=["j3", "j1", "j2"],
                             joint_position_scale=[1.0, -1.0, 2.0], joint_position_offset=[0.0, 0.5, 0.0])
    joint_map = JointMap.from_config(config, MODEL)
    assert joint_map.names == ["j1", "j2", "j3"] and joint_map.command_order == ["j3", "j1", "j2"]
    assert np.array_equal(joint_map.scale, [1.0, -1.0, 2.0])


@pytest.mark.parametrize("fields, message", [
    ({"joint_names": ["j1", "j2"]}, "needs 3 names"),
    ({"joint_position_scale": [1.0, 1.0]}, "joint_position_scale needs one value per joint"),
    ({"joint_position_offset": [0.0]}, "joint_position_offset needs one value per joint"),
    ({"command_joint_order": ["hip", "knee", "toe"]}, "permutation"),
    ({"joint_position_scale": [1.0, 0.0, 1.0]}, "zeros"),
])
def test_a_map_that_does_not_fit_the_model_is_refused_with_the_field_named(fields, message):
    with pytest.raises(ValueError, match=message):
        JointMap.from_config(GymBridgeConfig(backend="hardware", **fields), MODEL)
