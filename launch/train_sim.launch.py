"""Train in PyBullet over ROS 2: one learner, and per simulated robot a gym_bridge,
policy_server, safety_shield and experience_collector under its own namespace.

    ros2 launch drl_ros train_sim.launch.py robot:=kuka_iiwa task:=reach algorithm:=sac num_robots:=2
"""

import json

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ENV_IDS = {("kuka_iiwa", "reach"): "drl_ros/KukaReach-v0"}
"""(robot, task) → the Gymnasium id gym_bridge builds."""

ARGUMENTS = [
    ("robot", "kuka_iiwa", "robot to simulate"),
    ("task", "reach", "task to learn"),
    ("algorithm", "sac", "learning algorithm (an off-policy one: the learner replays experience)"),
    ("config", "kuka_reach", "run configuration: a YAML file or an embedded config name"),
    ("namespace", "", "namespace of the whole training setup"),
    ("num_robots", "1", "simulated robots feeding the one learner (robot1, robot2, ...)"),
    ("gui", "false", "open the PyBullet window of the first robot"),
    ("use_sim_time", "true", "nodes follow the simulated /clock of the first robot"),
    ("run_dir", "", "where the learner writes checkpoints and the final policy (empty: nowhere)"),
]


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    key = (arg["robot"], arg["task"])
    if key not in ENV_IDS:
        raise ValueError(f"no env for robot {key[0]!r} and task {key[1]!r}; known: {sorted(ENV_IDS)}")
    namespace = "/" + arg["namespace"].strip("/") if arg["namespace"].strip("/") else ""
    sim_time = _truthy(arg["use_sim_time"])
    shared = [("experience", f"{namespace}/experience"), ("policy_weights", f"{namespace}/policy_weights"),
              ("training_stats", f"{namespace}/training_stats")]
    nodes = [Node(package="drl_ros", executable="learner", namespace=namespace or None, output="screen",
                  parameters=[{"config": arg["config"], "overrides": [f"algorithm={arg['algorithm']}"],
                               "run_dir": arg["run_dir"], "use_sim_time": sim_time}])]
    for i in range(1, int(arg["num_robots"]) + 1):
        robot_ns = f"{namespace}/robot{i}"
        gui = i == 1 and _truthy(arg["gui"])
        bridge = {"env_id": ENV_IDS[key], "seed": i, "max_pending_updates": 100,
                  "render_mode": "human" if gui else "",
                  # One clock: the first robot's simulated time (several clocks would fight).
                  "publish_clock": i == 1, "use_sim_time": sim_time, "env_kwargs": json.dumps({})}
        nodes += [
            Node(package="drl_ros", executable="gym_bridge", namespace=robot_ns, parameters=[bridge],
                 remappings=shared, output="screen"),
            Node(package="drl_ros", executable="policy_server", namespace=robot_ns, remappings=shared,
                 parameters=[{"seed": i, "use_sim_time": sim_time}], output="screen"),
            Node(package="drl_ros", executable="safety_shield", namespace=robot_ns,
                 parameters=[{"use_sim_time": sim_time}], output="screen"),
            Node(package="drl_ros", executable="experience_collector", namespace=robot_ns, remappings=shared,
                 parameters=[{"use_sim_time": sim_time}], output="screen"),
        ]
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([DeclareLaunchArgument(name, default_value=default, description=text)
                              for name, default, text in ARGUMENTS] + [OpaqueFunction(function=_nodes)])
