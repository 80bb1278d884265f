"""sim_driver: a simulated robot behind a ros2_control-style driver's topics (like ros2_control's
mock hardware, but with PyBullet physics), so gym_bridge's hardware backend is tested end to end
without a robot.

Topics (relative): joint_states (sensor_msgs/JointState) out; forward_position_controller/commands
(std_msgs/Float64MultiArray, joint positions in ``joint_names`` order) and
joint_trajectory_controller/joint_trajectory (trajectory_msgs/JointTrajectory) in. A quadruped
(``robot`` a1 or laikago, standing on a floor) also publishes imu (sensor_msgs/Imu: base
orientation, angular velocity and linear acceleration in the base frame) and odom
(nav_msgs/Odometry: a perfect state estimate), and tracks its commands with the env's PD gains.
Optionally ground_truth (drl_ros/Observation): the robot's own observation terms. Every message
of one tick carries the same stamp. Physics runs in real time on a wall timer.
"""

from __future__ import annotations

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from drl_ros.envs.robots import KukaIiwa
from drl_ros.envs.robots.quadruped import A1, LAIKAGO, Quadruped
from drl_ros.envs.sim import PyBulletSim, pybullet
from drl_ros.msg import Observation
from drl_ros.nodes._main import run_node
from drl_ros.ros import qos
from drl_ros.ros.configs import SimDriverConfig
from drl_ros.ros.conversions import to_f32_array
from drl_ros.ros.parameters import declare_config

GRAVITY = np.array([0.0, 0.0, -9.81])


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
        self.legged = self.config.robot != "kuka"
        if self.legged:
            self.sim.load_urdf("plane.urdf", use_fixed_base=True)
            self.robot: KukaIiwa | Quadruped = Quadruped(self.sim, A1 if self.config.robot == "a1" else LAIKAGO)
            urdf_names = list(self.robot.model.motor_joints)
        else:
            self.robot = KukaIiwa(self.sim)
            urdf_names = [self.sim.client.getJointInfo(self.robot.body, j)[1].decode()
                          for j in self.robot.joint_indices]
        self.robot.reset()
        self.joint_names = list(self.config.joint_names) or urdf_names
        if len(self.joint_names) != len(self.robot.joint_indices):
            raise ValueError(f"joint_names needs {len(self.robot.joint_indices)} names")
        client = self.sim.client
        self._forces = [client.getJointInfo(self.robot.body, j)[10] for j in self.robot.joint_indices]
        self._base_velocity = np.zeros(3)
        self.commands_received = 0
        self._pub = self.create_publisher(JointState, "joint_states", sensor_qos)
        self._imu_pub = self.create_publisher(Imu, self.config.imu_topic, sensor_qos) if self.legged else None
        self._odom_pub = (self.create_publisher(Odometry, self.config.odometry_topic, sensor_qos)
                          if self.legged and self.config.odometry_topic else None)
        # Ground truth is for checking, not control: a deep reliable queue, so a checker loses none.
        self._truth_pub = (self.create_publisher(Observation, self.config.ground_truth_topic, qos.EXPERIENCE)
                           if self.config.ground_truth_topic else None)
        self._cmd_sub = self.create_subscription(Float64MultiArray, self.config.command_topic, self._on_forward,
                                                 command_qos)
        self._traj_sub = self.create_subscription(JointTrajectory, self.config.trajectory_topic,
                                                  self._on_trajectory, command_qos)
        self._tick_dt = substeps / self.config.physics_hz
        self._ticks = 0
        self._timer = self.create_timer(self._tick_dt, self._tick, clock=self._steady)

    def _track(self, positions: np.ndarray) -> None:
        positions = np.clip(positions, self.robot.joint_lower, self.robot.joint_upper)
        if isinstance(self.robot, Quadruped):
            self.robot.track_joint_targets(positions)  # the env's PD gains and force limits
        else:
            self.sim.client.setJointMotorControlArray(self.robot.body, self.robot.joint_indices,
                                                      pybullet.POSITION_CONTROL, targetPositions=positions.tolist(),
                                                      forces=self._forces)
        self.commands_received += 1

    def _on_forward(self, msg: Float64MultiArray) -> None:
        positions = np.asarray(msg.data, dtype=np.float64)
        if positions.shape != (len(self.joint_names),) or not np.all(np.isfinite(positions)):
            self.get_logger().warn("ignoring a command without one finite position per joint",
                                   throttle_duration_sec=5.0)
            return
        self._track(positions)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        index = {name: i for i, name in enumerate(msg.joint_names)}
        point = np.asarray(msg.points[-1].positions, dtype=np.float64)
        if any(n not in index for n in self.joint_names) or point.size != len(msg.joint_names):
            self.get_logger().warn("ignoring a trajectory that does not name every joint", throttle_duration_sec=5.0)
            return
        positions = np.array([point[index[n]] for n in self.joint_names])
        if np.all(np.isfinite(positions)):
            self._track(positions)

    def _tick(self) -> None:
        self.sim.step()
        self._ticks += 1
        stamp = self.get_clock().now().to_msg()
        state = self.robot.get_obs()
        if isinstance(self.robot, Quadruped):
            self._publish_base(stamp)
            n = len(self.joint_names)
            positions, velocities = state[9:9 + n], state[9 + n:9 + 2 * n]
        else:
            n = self.robot.n_joints
            positions, velocities = state[:n], state[n:2 * n]
        if self._truth_pub is not None:
            truth = Observation(sequence=self._ticks, observation=to_f32_array(state))
            truth.header.stamp = stamp
            self._truth_pub.publish(truth)
        # joint_states last: a consumer that has this tick's joint_states has its base state too.
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = list(self.joint_names)
        msg.position = positions.tolist()
        msg.velocity = velocities.tolist()
        self._pub.publish(msg)

    def _publish_base(self, stamp) -> None:
        robot = self.robot
        assert isinstance(robot, Quadruped)
        position, orientation = robot.base_pose()
        rotation = robot.base_rotation()
        linear, angular = robot.base_velocity_world()
        # An accelerometer measures specific force: acceleration minus gravity, in its own frame.
        acceleration = (linear - self._base_velocity) / self._tick_dt
        self._base_velocity = linear
        imu = Imu()
        imu.header.stamp = stamp
        imu.header.frame_id = "base"
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = orientation.tolist()
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (rotation.T @ angular).tolist()
        ax, ay, az = (rotation.T @ (acceleration - GRAVITY)).tolist()
        imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = ax, ay, az
        assert self._imu_pub is not None
        self._imu_pub.publish(imu)
        if self._odom_pub is not None:
            odom = Odometry()
            odom.header.stamp = stamp
            odom.header.frame_id = "odom"
            odom.child_frame_id = "base"
            odom.pose.pose.position.x, odom.pose.pose.position.y, odom.pose.pose.position.z = position.tolist()
            o = odom.pose.pose.orientation
            o.x, o.y, o.z, o.w = orientation.tolist()
            t = odom.twist.twist
            t.linear.x, t.linear.y, t.linear.z = (rotation.T @ linear).tolist()
            t.angular.x, t.angular.y, t.angular.z = (rotation.T @ angular).tolist()
            self._odom_pub.publish(odom)

    def close(self) -> None:
        self.sim.close()


def main(args: list[str] | None = None) -> int:
    return run_node(SimDriver, args)


if __name__ == "__main__":
    raise SystemExit(main())
