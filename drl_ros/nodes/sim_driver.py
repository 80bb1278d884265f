"""sim_driver: a simulated robot behind a ros2_control-style driver's topics (like ros2_control's
mock hardware, but with PyBullet physics), so gym_bridge's hardware backend is tested end to end
without a robot.

Topics (relative): joint_states (sensor_msgs/JointState) out; forward_position_controller/commands
(std_msgs/Float64MultiArray, joint positions in ``joint_names`` order) and
joint_trajectory_controller/joint_trajectory (trajectory_msgs/JointTrajectory) in. Physics runs
in real time on a wall timer.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.qos import QoSProfile
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from drl_ros.envs.robots import KukaIiwa
from drl_ros.envs.sim import PyBulletSim, pybullet
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import SimDriverConfig
from drl_ros.ros.parameters import declare_config


class SimDriver(Node):
    def __init__(self, node_name: str = "sim_driver", *, sensor_qos: QoSProfile = qos.SENSOR,
                 command_qos: QoSProfile = qos.COMMAND, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.config = declare_config(self, SimDriverConfig)
        # Timers pace work and watch liveness in wall time: with use_sim_time, a ROS-time timer
        # would wait for /clock, which only advances once the loop runs (a deadlock at start).
        self._steady = RclpyClock(clock_type=ClockType.STEADY_TIME)
        substeps = max(1, round(self.config.physics_hz / self.config.publish_hz))
        self.sim = PyBulletSim(physics_hz=self.config.physics_hz, substeps=substeps)
        self.robot = KukaIiwa(self.sim)
        self.robot.reset()
        if len(self.config.joint_names) != self.robot.n_joints:
            raise ValueError(f"joint_names needs {self.robot.n_joints} names")
        client = self.sim.client
        self._forces = [client.getJointInfo(self.robot.body, j)[10] for j in self.robot.joint_indices]
        self.commands_received = 0
        self._pub = self.create_publisher(JointState, "joint_states", sensor_qos)
        self._cmd_sub = self.create_subscription(Float64MultiArray, self.config.command_topic, self._on_forward,
                                                 command_qos)
        self._traj_sub = self.create_subscription(JointTrajectory, self.config.trajectory_topic,
                                                  self._on_trajectory, command_qos)
        self._timer = self.create_timer(substeps / self.config.physics_hz, self._tick, clock=self._steady)

    def _track(self, positions: np.ndarray) -> None:
        positions = np.clip(positions, self.robot.joint_lower, self.robot.joint_upper)
        self.sim.client.setJointMotorControlArray(self.robot.body, self.robot.joint_indices, pybullet.POSITION_CONTROL,
                                                  targetPositions=positions.tolist(), forces=self._forces)
        self.commands_received += 1

    def _on_forward(self, msg: Float64MultiArray) -> None:
        positions = np.asarray(msg.data, dtype=np.float64)
        if positions.shape != (self.robot.n_joints,) or not np.all(np.isfinite(positions)):
            self.get_logger().warn("ignoring a command without one finite position per joint",
                                   throttle_duration_sec=5.0)
            return
        self._track(positions)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        index = {name: i for i, name in enumerate(msg.joint_names)}
        point = np.asarray(msg.points[-1].positions, dtype=np.float64)
        if any(n not in index for n in self.config.joint_names) or point.size != len(msg.joint_names):
            self.get_logger().warn("ignoring a trajectory that does not name every joint", throttle_duration_sec=5.0)
            return
        positions = np.array([point[index[n]] for n in self.config.joint_names])
        if np.all(np.isfinite(positions)):
            self._track(positions)

    def _tick(self) -> None:
        self.sim.step()
        state = self.robot.get_obs()
        n = self.robot.n_joints
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(self.config.joint_names)
        msg.position = state[:n].tolist()
        msg.velocity = state[n:].tolist()
        self._pub.publish(msg)

    def close(self) -> None:
        self.sim.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SimDriver, args)


if __name__ == "__main__":
    raise SystemExit(main())
