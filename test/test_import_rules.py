"""DESIGN.md section 3: imports flow nodes → ros → runtime/envs → core; core never imports
rclpy or pybullet, and nothing outside ros/ and nodes/ imports rclpy."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "drl_ros"

FORBIDDEN = {
    "core": ("rclpy", "pybullet", "pybullet_data", "pybullet_utils", "drl_ros.envs", "drl_ros.runtime",
             "drl_ros.ros", "drl_ros.nodes"),
    "envs": ("rclpy", "drl_ros.runtime", "drl_ros.ros", "drl_ros.nodes"),
    "runtime": ("rclpy", "drl_ros.ros", "drl_ros.nodes"),
    "ros": ("drl_ros.nodes",),
}


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_layers_import_only_downwards():
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for name in _imported_modules(path):
                if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                    violations.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not violations, "\n".join(violations)


def test_every_core_module_imports_without_simulator_or_ros():
    modules = sorted("drl_ros." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                     for p in (PACKAGE / "core").rglob("*.py") if p.name != "__init__.py")
    assert len(modules) >= 8
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'pybullet', 'pybullet_data')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_node_settings_and_ros_free_modules_stay_ros_free():
    # The node settings are read by tests and tools that have no ROS installed.
    for path in (PACKAGE / "ros" / "configs.py", PACKAGE / "ros" / "hardware.py"):
        assert not [n for n in _imported_modules(path) if n.split(".")[0] == "rclpy" or n.startswith("drl_ros.msg")]


def test_runtime_reaches_ros_mode_only_by_module_name():
    # `drl-ros train --ros` must import the composed-mode module lazily, by its name as a string.
    assert '"drl_ros.nodes.composed"' in (PACKAGE / "runtime" / "cli.py").read_text()


def test_top_level_package_init_holds_no_logic():
    # The ROS build installs rosidl's generated drl_ros/__init__.py in place of ours.
    assert (PACKAGE / "__init__.py").read_text().strip() == ""
