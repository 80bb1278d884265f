"""Real rclpy in separate processes: the ROS build, per-test domains, node processes, clients.

The test process itself never imports rclpy: it may already hold the source tree's ``drl_ros``
(without the generated ``drl_ros.msg``), so every ROS participant, clients included, is a child
process whose PYTHONPATH puts the build's install space first.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).resolve().parent / "clients.py"
_domains = itertools.count()


def install_dir() -> Path:
    return Path(os.environ.get("DRL_ROS_BUILD", ROOT / "build" / "ros")) / "install"


def rclpy_problem() -> str | None:
    import importlib.util

    if sys.version_info[:2] != (3, 11):
        return f"the ros-jazzy wheels are Python 3.11 only; this is {sys.version.split()[0]}"
    if importlib.util.find_spec("rclpy") is None:
        return (f"rclpy is not installed in {sys.prefix}; tools/build_ros.sh installs it "
                f"(DRL_ROS_VENV={sys.prefix}) and builds the package")
    return None


def build_problem() -> str | None:
    """Why the build cannot serve these tests as it is, or None when it can."""
    site = install_dir() / "lib" / "python3.11" / "site-packages" / "drl_ros"
    if not (site / "msg" / "__init__.py").exists():
        return f"no ROS build at {install_dir()}"
    installed = install_dir() / "share" / "drl_ros"
    for source in sorted((ROOT / "msg").glob("*.msg")) + sorted((ROOT / "srv").glob("*.srv")):
        built = installed / source.parent.name / source.name
        if not built.exists() or built.read_bytes() != source.read_bytes():
            return f"the ROS build is stale: {source.parent.name}/{source.name} changed"
    # The symlink install links file by file: a module added since the last build is missing there.
    for module in (ROOT / "drl_ros").rglob("*.py"):
        relative = module.relative_to(ROOT / "drl_ros")
        if relative != Path("__init__.py") and "__pycache__" not in relative.parts and not (site / relative).exists():
            return f"the ROS build lacks drl_ros/{relative}"
    return None


def require_build() -> None:
    """Skip (fail under CI) unless rclpy and an up-to-date build are there; a stale or missing
    build is rebuilt first, once, under a lock shared by the xdist workers."""
    problem = rclpy_problem()
    if problem is None and build_problem() is not None:
        import fcntl

        install_dir().parent.mkdir(parents=True, exist_ok=True)
        with open(install_dir().parent / ".test-build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if build_problem() is not None:
                env = dict(os.environ, DRL_ROS_VENV=sys.prefix, DRL_ROS_BUILD=str(install_dir().parent))
                result = subprocess.run(["bash", str(ROOT / "tools" / "build_ros.sh")], env=env,
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    problem = f"tools/build_ros.sh failed: {result.stderr[-2000:]}"
        problem = problem or build_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI builds the ROS package first (.ci/run); {problem}")
    pytest.skip(problem)


def new_domain() -> int:
    """A ROS_DOMAIN_ID no other test of this run uses (xdist workers get disjoint ranges)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    return 1 + (index * 25 + (os.getpid() + next(_domains)) % 25) % 100


def ros_env(domain: int) -> dict[str, str]:
    install = install_dir()
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(install / "lib" / "python3.11" / "site-packages"),
        "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(install / "lib"), env.get("LD_LIBRARY_PATH", "")])),
        "AMENT_PREFIX_PATH": os.pathsep.join([str(install), sys.prefix]),
        "ROS_DOMAIN_ID": str(domain),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    })
    return env


class RosGraph:
    """The node processes of one test, on one domain; stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, tmp_path: Path) -> None:
        self.domain = new_domain()
        self.env = ros_env(self.domain)
        self.tmp_path = tmp_path
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def node(self, executable: str, params: dict[str, Any] | None = None, namespace: str = "",
             remap: dict[str, str] | None = None, name: str | None = None) -> subprocess.Popen:
        args = [sys.executable, "-m", f"drl_ros.nodes.{executable}", "--ros-args"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={_param(value)}"]
        if namespace:
            args += ["-r", f"__ns:={namespace}"]
        if name:
            args += ["-r", f"__node:={name}"]
        for src, dst in (remap or {}).items():
            args += ["-r", f"{src}:={dst}"]
        log = self.tmp_path / f"{namespace.strip('/').replace('/', '_')}_{name or executable}.log"
        # Not started in the source tree: there `python -m` would import drl_ros from the checkout,
        # which has no generated drl_ros.msg.
        proc = subprocess.Popen(args, env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.tmp_path)
        self.procs.append((executable, proc, log))
        return proc

    def client(self, command: str, timeout: float = 120.0, **kwargs: Any) -> Any:
        """Run one client function of clients.py in its own process; returns its JSON result."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.tmp_path, delete=False) as f:
            json.dump(kwargs, f)
        result = subprocess.run([sys.executable, str(CLIENTS), command, f.name], env=self.env, capture_output=True,
                                text=True, timeout=timeout, cwd=self.tmp_path)
        if result.returncode != 0:
            raise AssertionError(f"client {command} failed ({result.returncode}):\n{result.stderr[-4000:]}\n"
                                 + self.logs())
        return json.loads(result.stdout.strip().splitlines()[-1])

    def alive(self) -> list[str]:
        dead = [f"{name} exited with {proc.returncode}" for name, proc, _ in self.procs if proc.poll() is not None]
        assert not dead, "; ".join(dead) + "\n" + self.logs()
        return [name for name, _, _ in self.procs]

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-tail:]}" for _, _, log in self.procs if log.exists())

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 10
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> "RosGraph":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _param(value: Any) -> str:
    # --ros-args -p values are YAML.
    if isinstance(value, (dict, list)) and not (isinstance(value, list) and value and isinstance(value[0], str)):
        return json.dumps(value) if isinstance(value, list) else json.dumps(json.dumps(value))
    if isinstance(value, list):
        return "[" + ",".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def trained_reach_policy() -> Path:
    """A Kuka reach policy that reaches (``<stem>`` of policy.json): the one the ROS learning test
    produced if it ran first, else trained here in embedded mode; cached in the build folder."""
    import fcntl
    import shutil

    cache = install_dir().parent / "test-cache"
    cache.mkdir(parents=True, exist_ok=True)
    stem = cache / "reach_policy"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / "reach_policy.json").exists():
            from drl_ros.core.config import load_train_config
            from drl_ros.runtime.trainer import Trainer

            config = load_train_config(ROOT / "config" / "kuka_reach.yaml", ["eval.final_episodes=20"])
            run = cache / "embedded-run"
            shutil.rmtree(run, ignore_errors=True)
            with Trainer(config, run, progress=False) as trainer:
                result = trainer.train()
            store_policy(result.policy_path.with_suffix(""))
    return stem


def store_policy(stem: Path) -> None:
    """Keep a policy in the test cache as the trained reach policy (saved anew: atomic, no pickle)."""
    from drl_ros.core.policy import Policy

    cache = install_dir().parent / "test-cache"
    cache.mkdir(parents=True, exist_ok=True)
    Policy.load(stem).save(cache / "reach_policy")
