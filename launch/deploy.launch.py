"""Run a trained policy on a robot: gym_bridge (hardware backend) + policy_server + safety_shield,
no learner. ``sim_driver:=true`` adds the simulated driver, to try the chain without hardware.

    ros2 launch drl_ros deploy.launch.py policy:=runs/kuka_reach-.../policy namespace:=arm1
    ros2 launch drl_ros deploy.launch.py policy:=runs/a1_walk-.../policy robot:=a1 task:=walk \
        imu_topic:=imu odometry_topic:=odom

Two shields: ``safety_shield`` checks the policy's actions (action mode) before gym_bridge turns
them into joint targets; with ``joint_shield:=<shield YAML>`` (e.g. config/shield/kuka_iiwa.yaml)
a second one, in joint mode under ``<namespace>/joint_shield``, sits between gym_bridge and the
driver's command topic, so the URDF's limits (tightened in the YAML), the workspace box and the
watchdog apply to what the robot receives.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

ENV_IDS = {("kuka_iiwa", "reach"): "drl_ros/KukaReach-v0", ("a1", "walk"): "drl_ros/A1Walk-v0",
           ("laikago", "walk"): "drl_ros/LaikagoWalk-v0"}
"""(robot, task) → the Gymnasium id whose observation gym_bridge rebuilds from the robot's topics."""
SIM_DRIVER_ROBOTS = {"kuka_iiwa": "kuka", "a1": "a1", "laikago": "laikago"}
ACTION_DIMS = {"drl_ros/KukaReach-v0": 3, "drl_ros/A1Walk-v0": 12, "drl_ros/LaikagoWalk-v0": 12}
"""Normalized action dimensions of each env: the action-mode shield's bounds are [-1, 1] per dimension."""

ARGUMENTS = [
    ("policy", "", "policy file to serve (run folder's policy.json, with or without .json)"),
    ("robot", "kuka_iiwa", "robot model the driver runs"),
    ("task", "reach", "task the policy was trained on"),
    ("namespace", "", "namespace of this robot"),
    ("command_interface", "forward_command", "forward_command (Float64MultiArray) or trajectory (JointTrajectory)"),
    ("command_topic", "forward_position_controller/commands", "the driver's command topic"),
    ("joint_states_topic", "joint_states", "the driver's joint_states topic"),
    ("imu_topic", "imu", "legged robots: the base IMU's sensor_msgs/Imu topic"),
    ("odometry_topic", "", ("legged robots: a state estimator's nav_msgs/Odometry topic (base velocity); "
                            "empty: none, the base linear velocity reads 0")),
    ("env_kwargs", "{}", ("the env's keyword arguments as the policy was trained (a JSON object), e.g. "
                          "'{\"robot_kwargs\": {\"gait\": {}}}' for a walking policy trained on the trot gait")),
    ("sim_driver", "false", "also start the simulated driver (PyBullet behind the driver topics)"),
    ("use_sim_time", "false", "nodes follow /clock"),
    ("joint_shield", "", ("shield YAML (config/shield/*.yaml) of a joint-mode shield between gym_bridge and "
                          "the driver (forward_command interface); empty: none")),
]


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    if not arg["policy"]:
        raise ValueError("deploy.launch.py needs policy:=<path to policy.json>")
    key = (arg["robot"], arg["task"])
    if key not in ENV_IDS:
        raise ValueError(f"no env for robot {key[0]!r} and task {key[1]!r}; known: {sorted(ENV_IDS)}")
    namespace = arg["namespace"].strip("/") or None
    sim_time = arg["use_sim_time"].lower() in ("1", "true", "yes", "on")
    joint_shield = arg["joint_shield"]
    if joint_shield and arg["command_interface"] != "forward_command":
        raise ValueError("joint_shield needs command_interface:=forward_command")
    prefix = f"/{namespace}" if namespace else ""
    nodes = [
        Node(package="drl_ros", executable="gym_bridge", namespace=namespace, output="screen",
             parameters=[{"backend": "hardware", "env_id": ENV_IDS[key],
                          "command_interface": arg["command_interface"],
                          "command_topic": "joint_target" if joint_shield else arg["command_topic"],
                          "joint_states_topic": arg["joint_states_topic"], "imu_topic": arg["imu_topic"],
                          "odometry_topic": arg["odometry_topic"], "env_kwargs": arg["env_kwargs"],
                          "use_sim_time": sim_time}]),
        Node(package="drl_ros", executable="policy_server", namespace=namespace, output="screen",
             parameters=[{"policy_file": arg["policy"], "deterministic": True, "hot_swap": False,
                          "use_sim_time": sim_time}]),
        Node(package="drl_ros", executable="safety_shield", namespace=namespace, output="screen",
             parameters=[{"action_low": [-1.0] * ACTION_DIMS[ENV_IDS[key]],
                          "action_high": [1.0] * ACTION_DIMS[ENV_IDS[key]], "use_sim_time": sim_time}]),
    ]
    if joint_shield:
        # Joint positions in, joint positions out: the YAML's normalized policy actions do not
        # apply to the bridge's joint targets.
        nodes.append(Node(package="drl_ros", executable="safety_shield", name="joint_shield",
                          namespace=f"{prefix}/joint_shield", output="screen",
                          parameters=[{"config_file": joint_shield, "normalized_actions": False,
                                       "use_sim_time": sim_time}],
                          remappings=[("joint_states", f"{prefix}/{arg['joint_states_topic']}"),
                                      ("joint_target", f"{prefix}/joint_target"),
                                      ("joint_command", f"{prefix}/{arg['command_topic']}")]))
    if arg["sim_driver"].lower() in ("1", "true", "yes", "on"):
        nodes.append(Node(package="drl_ros", executable="sim_driver", namespace=namespace, output="screen",
                          parameters=[{"robot": SIM_DRIVER_ROBOTS[arg["robot"]], "command_topic": arg["command_topic"],
                                       "imu_topic": arg["imu_topic"], "odometry_topic": arg["odometry_topic"] or "odom",
                                       "use_sim_time": sim_time}]))
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([DeclareLaunchArgument(name, default_value=default, description=text)
                              for name, default, text in ARGUMENTS] + [OpaqueFunction(function=_nodes)])
