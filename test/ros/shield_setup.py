"""What the safety-shield ROS tests share: the Kuka shield's parameters, the limits the tests
check commands against (read from the URDF here, not from the shield), a small policy for
policy_server, and shield_clients.py processes (the test process never imports rclpy)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

SHIELD_CLIENTS = Path(__file__).resolve().parent / "shield_clients.py"

JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
Q0 = [0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0]
"""A Kuka configuration whose flange is well inside the workspace box below."""
OBS_DIM = 4
PERIOD = 0.05
"""Control period of the shield in these tests (20 Hz: a cheap tick on a loaded 2-core machine)."""
TIMEOUT = 0.3
"""Watchdog timeouts (observation and action) in these tests."""
VELOCITY, ACCELERATION = 1.5, 10.0
BOX_LOW, BOX_HIGH = [0.2, -0.6, 0.1], [0.9, 0.6, 1.0]


def shield_params(**extra: Any) -> dict[str, Any]:
    """The Kuka iiwa shield of config/shield/kuka_iiwa.yaml, as node parameters, with the
    tests' period and timeouts."""
    params = {"urdf": "kuka_iiwa/model.urdf", "interface": "position", "normalized_actions": True,
              "scaling.mode": "delta", "control_period": PERIOD, "default_limits.velocity": VELOCITY,
              "default_limits.acceleration": ACCELERATION, "watchdog.observation_timeout": TIMEOUT,
              "watchdog.action_timeout": TIMEOUT, "workspace.base_link": "lbr_iiwa_link_0",
              "workspace.ee_link": "lbr_iiwa_link_7", "workspace.low": BOX_LOW, "workspace.high": BOX_HIGH,
              "latch_on": ["state_out_of_limits", "workspace_exit"]}
    params.update(extra)
    return params


def kuka_urdf() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "model.urdf"


def urdf_position_limits() -> tuple[np.ndarray, np.ndarray]:
    """The Kuka joints' position limits, read from the URDF file itself."""
    root = ET.parse(kuka_urdf()).getroot()
    by_name = {j.get("name"): j.find("limit") for j in root.findall("joint")}
    lower = np.array([float(by_name[n].get("lower")) for n in JOINTS])
    upper = np.array([float(by_name[n].get("upper")) for n in JOINTS])
    return lower, upper


def flange_positions(commands: np.ndarray) -> np.ndarray:
    """Flange (lbr_iiwa_link_7) positions (k, 3) of joint configurations (k, 7), from PyBullet."""
    import pybullet as p

    client = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(kuka_urdf()), useFixedBase=True, physicsClientId=client)
        out = []
        for q in commands:
            for j, value in enumerate(q):
                p.resetJointState(body, j, float(value), physicsClientId=client)
            out.append(p.getLinkState(body, 6, computeForwardKinematics=True, physicsClientId=client)[4])
        return np.asarray(out)
    finally:
        p.disconnect(client)


def save_policy(path: Path, action_dim: int = 7, seed: int = 0) -> Path:
    """A small deterministic policy (OBS_DIM → action_dim in [-1, 1]) for policy_server."""
    import torch

    from drl_ros.core.policy import Policy
    from drl_ros.core.spaces import BoxSpec

    torch.manual_seed(seed)
    policy = Policy.create(BoxSpec((-1.0,) * OBS_DIM, (1.0,) * OBS_DIM), BoxSpec((-1.0,) * action_dim,
                                                                                 (1.0,) * action_dim),
                           "squashed_gaussian", [32, 32], "relu")
    policy.version = 1
    policy.save(path)
    return path


def _args_file(ros: Any, kwargs: dict[str, Any]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=ros.tmp_path, delete=False) as f:
        json.dump(kwargs, f)
    return f.name


def start_client(ros: Any, command: str, **kwargs: Any) -> subprocess.Popen:
    """A shield_clients.py command running in the background (``finish_client`` collects it)."""
    return subprocess.Popen([sys.executable, str(SHIELD_CLIENTS), command, _args_file(ros, kwargs)], env=ros.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ros.tmp_path)


def finish_client(ros: Any, proc: subprocess.Popen, timeout: float = 120.0) -> Any:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"client timed out:\n{err[-4000:]}\n" + ros.logs()) from None
    if proc.returncode != 0:
        raise AssertionError(f"client failed ({proc.returncode}):\n{err[-4000:]}\n" + ros.logs())
    return json.loads(out.strip().splitlines()[-1])


def run_client(ros: Any, command: str, timeout: float = 120.0, **kwargs: Any) -> Any:
    return finish_client(ros, start_client(ros, command, **kwargs), timeout)


def first_index(items: list[dict[str, Any]], predicate: Any, start: int = 0) -> int:
    """Index of the first item from ``start`` on that satisfies ``predicate``; -1 if none."""
    return next((i for i in range(start, len(items)) if predicate(items[i])), -1)


def finite(values: list) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)
