"""Run suite_clients.py functions in their own processes (the test process never imports rclpy),
in the foreground like RosGraph.client, or in the background while the test kills and restarts
nodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rosproc import RosGraph

SUITE_CLIENTS = Path(__file__).resolve().parent / "suite_clients.py"


def _args_file(graph: RosGraph, kwargs: dict[str, Any]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=graph.tmp_path, delete=False) as f:
        json.dump(kwargs, f)
    return f.name


def _env(graph: RosGraph) -> dict[str, str]:
    # clients.py's helpers are imported from next to suite_clients.py.
    env = dict(graph.env)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(SUITE_CLIENTS.parent)])
    return env


def run_client(graph: RosGraph, command: str, timeout: float = 120.0, **kwargs: Any) -> Any:
    result = subprocess.run([sys.executable, str(SUITE_CLIENTS), command, _args_file(graph, kwargs)],
                            env=_env(graph), capture_output=True, text=True, timeout=timeout, cwd=graph.tmp_path,
                            check=False)
    if result.returncode != 0:
        raise AssertionError(f"client {command} failed ({result.returncode}):\n{result.stderr[-4000:]}\n"
                             + graph.logs())
    return json.loads(result.stdout.strip().splitlines()[-1])


class BackgroundClient:
    """A client that runs until :meth:`finish` (SIGTERM) and then prints its result."""

    def __init__(self, graph: RosGraph, command: str, **kwargs: Any) -> None:
        self.graph = graph
        self.out = graph.tmp_path / f"{command}.out"
        self.proc = subprocess.Popen([sys.executable, str(SUITE_CLIENTS), command, _args_file(graph, kwargs)],
                                     env=_env(graph), stdout=self.out.open("w"), stderr=subprocess.STDOUT,
                                     cwd=graph.tmp_path)
        deadline = time.monotonic() + 60
        while '"ready"' not in self.out.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"client {command} did not start:\n{self.out.read_text()[-4000:]}")
            time.sleep(0.1)

    def progress(self) -> dict[str, Any]:
        """The newest ``{"progress": ...}`` line the client printed (empty before the first)."""
        lines = [line for line in self.out.read_text().splitlines() if line.startswith('{"progress"')]
        return json.loads(lines[-1])["progress"] if lines else {}

    def wait_until(self, key: str, at_least: int, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the newest progress line's ``key`` is at least ``at_least``; returns that line."""
        return self.wait_for(f"{key} >= {at_least}", lambda progress: progress.get(key, -1) >= at_least, timeout)

    def wait_for(self, what: str, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 120.0) -> dict[str, Any]:
        """Wait until ``predicate`` holds for the newest progress line; returns that line."""
        deadline = time.monotonic() + timeout
        while not (progress := self.progress()) or not predicate(progress):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached: {progress}\n" + self.graph.logs())
            time.sleep(0.2)
        return progress

    def finish(self, timeout: float = 60.0) -> Any:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        lines = [line for line in self.out.read_text().splitlines() if line.startswith("{")]
        return json.loads(lines[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
