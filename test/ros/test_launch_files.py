"""The launch files: they parse and start only executables the package installs; where launch_ros
is importable (a ROS 2 install: it is not on PyPI) their launch descriptions are expanded and checked."""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch"


def _installed_executables() -> set[str]:
    cmake = (ROOT / "CMakeLists.txt").read_text()
    return set(re.search(r"set\(drl_ros_nodes ([^)]*)\)", cmake).group(1).split())


@pytest.mark.parametrize("name", ["train_sim.launch.py", "deploy.launch.py"])
def test_launch_files_name_only_installed_executables(name):
    tree = ast.parse((LAUNCH / name).read_text())
    executables = {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   for kw in node.keywords if kw.arg == "executable" and isinstance(kw.value, ast.Constant)}
    assert executables and executables <= _installed_executables()
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def _expand(name: str, arguments: dict[str, str]):
    try:
        import launch_ros.actions  # noqa: F401
    except ImportError as error:
        pytest.skip(f"launch_ros is not importable ({error}): it ships with ROS 2 (apt ros-jazzy-launch-ros), "
                    "not on PyPI")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    declared = {}
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            declared[entity.name] = entity
            context.launch_configurations[entity.name] = arguments.get(
                entity.name, "".join(s.perform(context) for s in entity.default_value))
    nodes = []
    for entity in description.entities:
        if isinstance(entity, OpaqueFunction):
            nodes += entity.execute(context) or []
    return declared, nodes, context


def test_train_sim_launch_description():
    declared, nodes, context = _expand("train_sim.launch.py", {"num_robots": "2", "namespace": "lab"})
    assert {"robot", "task", "algorithm", "namespace", "num_robots", "gui", "use_sim_time"} <= set(declared)
    executables = sorted(n.node_executable for n in nodes)
    assert executables == sorted(["learner"] + 2 * ["gym_bridge", "policy_server", "safety_shield",
                                                    "experience_collector"])
    bridges = [n for n in nodes if n.node_executable == "gym_bridge"]
    for node in bridges:
        node._perform_substitutions(context)  # what launch does before it starts the process
    assert sorted(n.expanded_node_namespace for n in bridges) == ["/lab/robot1", "/lab/robot2"]


def test_deploy_launch_description():
    declared, nodes, _ = _expand("deploy.launch.py", {"policy": "/tmp/policy.json", "sim_driver": "true"})
    assert {"policy", "namespace", "command_interface", "sim_driver"} <= set(declared)
    assert sorted(n.node_executable for n in nodes) == ["gym_bridge", "policy_server", "safety_shield", "sim_driver"]
    assert "learner" not in {n.node_executable for n in nodes}


def test_deploy_launch_puts_a_joint_shield_between_bridge_and_driver():
    _, nodes, context = _expand("deploy.launch.py", {"policy": "/tmp/policy.json", "namespace": "arm",
                                                     "joint_shield": "config/shield/kuka_iiwa.yaml"})
    shields = [n for n in nodes if n.node_executable == "safety_shield"]
    assert len(shields) == 2
    for node in shields:
        node._perform_substitutions(context)
    assert sorted(n.expanded_node_namespace for n in shields) == ["/arm", "/arm/joint_shield"]


def _parameters(node, context) -> dict:
    """A launch_ros Node's parameter dicts with their substitutions performed (launch_ros wraps
    values as YAML documents, read back here)."""
    def text(v):
        return "".join(s.perform(context) for s in v)

    def value(v):
        return yaml.safe_load(text(v)) if isinstance(v, tuple) and v and hasattr(v[0], "perform") else v
    return {text(k): value(v) for d in node._Node__parameters for k, v in d.items()}


def test_deploy_launch_mirrors_a_legged_robot_from_its_imu():
    declared, nodes, context = _expand("deploy.launch.py", {"policy": "/tmp/policy.json", "robot": "a1",
                                                            "task": "walk", "sim_driver": "true",
                                                            "odometry_topic": "odom",
                                                            "env_kwargs": '{"robot_kwargs": {"gait": {}}}'})
    assert {"imu_topic", "odometry_topic"} <= set(declared)
    parameters = {n.node_executable: _parameters(n, context) for n in nodes}
    assert parameters["gym_bridge"]["env_id"] == "drl_ros/A1Walk-v0"
    assert (parameters["gym_bridge"]["imu_topic"], parameters["gym_bridge"]["odometry_topic"]) == ("imu", "odom")
    assert parameters["sim_driver"]["robot"] == "a1"
    assert parameters["gym_bridge"]["env_kwargs"] == '{"robot_kwargs": {"gait": {}}}'  # as trained: the trot gait
    # The action-mode shield bounds the walking policy's 12 joint actions, not the arm's 3.
    assert list(parameters["safety_shield"]["action_low"]) == [-1.0] * 12


def test_deploy_launch_refuses_an_unknown_robot_and_task():
    with pytest.raises(ValueError, match="no env for robot"):
        _expand("deploy.launch.py", {"policy": "/tmp/policy.json", "robot": "a1", "task": "reach"})
