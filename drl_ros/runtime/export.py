"""``drl-ros export``: a run folder's policy → ONNX + policy contract (drl_ros.core.export).

The run's env is built once, only to read what the contract needs from it: the observation
terms, the joint map and the control rate (see ``RobotTaskEnv.policy_contract``). Envs that do
not declare them get ``None`` there, except the control rate, which falls back to ``1 / env.dt``
where the env has a ``dt`` (Gymnasium's classic-control and MuJoCo envs do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drl_ros.core.config import EnvConfig
from drl_ros.core.export import ExportResult, export_onnx
from drl_ros.core.policy import Policy
from drl_ros.runtime.env_factory import make_env
from drl_ros.runtime.trainer import load_run_config

FORMATS = ("onnx",)
EXPORT_DIR = "export"


def env_policy_contract(config: EnvConfig) -> dict[str, Any]:
    """Observation terms, joint map and control rate of the env ``config`` builds (each may be None)."""
    try:
        env = make_env(config)
    except Exception as error:
        raise ValueError(f"could not build env {config.id!r} to read its observation terms, joint map and "
                         f"control rate ({error}); pass --no-env to export without them") from error
    try:
        unwrapped = env.unwrapped
        declared = getattr(unwrapped, "policy_contract", None)
        contract: dict[str, Any] = dict(declared()) if callable(declared) else {}
        if contract.get("control_rate_hz") is None:
            dt = getattr(unwrapped, "dt", None)
            if isinstance(dt, (int, float)) and dt > 0:
                contract["control_rate_hz"] = 1.0 / float(dt)
        return contract
    finally:
        env.close()


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, fmt: str = "onnx",
               use_env: bool = True) -> ExportResult:
    """Export ``run_dir/policy`` to ``out_dir`` (default ``run_dir/export``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; supported: {', '.join(FORMATS)}")
    run = Path(run_dir)
    policy_json = run / "policy.json"
    if not policy_json.is_file():
        raise FileNotFoundError(f"{policy_json}: no trained policy in this run folder")
    policy = Policy.load(run / "policy")
    extra = json.loads(policy_json.read_text(encoding="utf-8")).get("metadata", {}).get("extra") or {}
    config = load_run_config(run)
    env_contract = env_policy_contract(config.env) if use_env else {}
    source = {"run": str(run.resolve()), "env_id": config.env.id, "env_kwargs": dict(config.env.kwargs),
              "algorithm": config.algorithm, "steps": extra.get("steps")}
    return export_onnx(policy, Path(out_dir) if out_dir is not None else run / EXPORT_DIR,
                       env_contract=env_contract, source=source)
