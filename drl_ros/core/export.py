"""Export a :class:`~drl_ros.core.policy.Policy` to ONNX plus a JSON policy contract.

The contract is everything a robot computer needs to run the policy with onnxruntime alone (see
:mod:`drl_ros.core.onnx_policy`, which imports no torch):

* the ONNX graph is :meth:`Policy.forward`: raw observation ``(B, obs_dim)`` float32 → observation
  normalization (inside the graph) → actor → deterministic *normalized* action, ``(B, act_dim)``
  float32 for Box actions, ``(B,)`` int64 for discrete ones. Every actor kind goes through
  ``forward``, so a new kind exports without changes here;
* the contract JSON says how to build the input (observation terms and their order, bounds), what
  the graph already does (normalization statistics, for the record), how to turn its output into
  an env / robot command (``clip(a, -1, 1) * scale + offset``, exactly :meth:`Policy.scale_action`),
  where the commands go (joint map) and how often (control rate), which policy version it is, and
  the sha256 of the ONNX file, which the runtime checks before it parses a byte of it.

Files (both written atomically, the ONNX file first, so the contract — the commit record — never
names bytes that are not fully on disk; a crash in between leaves an old contract whose sha256
no longer matches, which the runtime refuses)::

    <out_dir>/policy.onnx
    <out_dir>/policy_contract.json
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drl_ros.core.checkpoint import _write_bytes_atomic
from drl_ros.core.onnx_policy import (
    CONTRACT_FILE,
    CONTRACT_FORMAT,
    CONTRACT_FORMAT_VERSION,
    INPUT_NAME,
    ONNX_FILE,
    OUTPUT_NAME,
    OnnxPolicy,
)
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec, DiscreteSpec

__all__ = ["DEFAULT_OPSET", "ExportResult", "build_contract", "export_onnx", "onnx_graph_bytes"]

# Opset 17 is read by every onnxruntime since 1.13 and holds every operator the actors use.
DEFAULT_OPSET = 17
# Observations for the post-export check: enough to cover the normalizer's clip and argmax ties
# are practically impossible with continuous random inputs.
_VERIFY_SAMPLES = 64
VERIFY_TOLERANCE = 1e-5


@dataclass
class ExportResult:
    onnx_path: Path
    contract_path: Path
    contract: dict[str, Any]
    max_abs_diff: float
    """Largest |torch − onnxruntime| normalized action over the verification observations."""


def onnx_graph_bytes(policy: Policy, opset: int = DEFAULT_OPSET) -> bytes:
    """Serialize :meth:`Policy.forward` to ONNX bytes with a dynamic batch dimension.

    Uses the TorchScript-based exporter (``dynamo=False``): it ships inside torch, so exporting
    needs no ``onnxscript`` and works offline, and for these small feed-forward graphs it yields
    the same operators as the torch.export-based one. torch ≥ 2.9 marks it deprecated; the
    warning is silenced here because the choice is deliberate.
    """
    was_training = policy.training
    policy.eval()
    example = torch.zeros(1, policy.observation_spec.dim, dtype=torch.float32)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            # Tracer warnings about shape-dependent Python values (e.g. IQN's expand to the batch
            # size) are expected: the exported graph reads the batch size from the input shape.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # The TorchScript exporter writes to file-like objects too; the annotation says paths only.
            torch.onnx.export(
                policy, (example,), buffer,  # type: ignore[arg-type]
                dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
                do_constant_folding=True, export_params=True,
            )
    finally:
        policy.train(was_training)
    return buffer.getvalue()


def _package_version() -> str | None:
    try:
        return importlib_metadata.version("drl_ros")
    except importlib_metadata.PackageNotFoundError:
        return None


def _floats(values: Any) -> list[float | str]:
    # JSON has no infinity: the same string encoding as the policy file's space bounds.
    return [float(v) if np.isfinite(v) else ("inf" if v > 0 else "-inf") for v in np.asarray(values, np.float64)]


def _observation_terms(terms: Any, obs_dim: int) -> list[dict[str, Any]] | None:
    """Check env-declared terms: ``[{"name", "start", "stop"}, ...]`` tiling ``[0, obs_dim)`` in order."""
    if terms is None:
        return None
    out = []
    position = 0
    for term in terms:
        name, start, stop = str(term["name"]), int(term["start"]), int(term["stop"])
        if start != position or stop <= start:
            raise ValueError(f"observation term {name!r} [{start}:{stop}] does not follow the previous term "
                             f"(which ends at {position})")
        out.append({**term, "name": name, "start": start, "stop": stop})
        position = stop
    if position != obs_dim:
        raise ValueError(f"observation terms cover [0:{position}] but the policy reads {obs_dim} values")
    return out


def build_contract(policy: Policy, onnx_sha256: str, *, opset: int = DEFAULT_OPSET,
                   env_contract: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
                   max_abs_diff: float | None = None) -> dict[str, Any]:
    """The policy contract for an exported policy (see :mod:`drl_ros.core.onnx_policy` for the
    fields). ``env_contract`` is what the env declares (``observation_terms``, ``joint_map``,
    ``control_rate_hz``); anything it leaves out is ``None``."""
    env_contract = dict(env_contract or {})
    obs_spec = policy.observation_spec
    if isinstance(policy.action_spec, DiscreteSpec):
        action: dict[str, Any] = {"kind": "discrete", "n": policy.action_spec.n, "dtype": "int64",
                                  "output_shape": ["batch"]}
    else:
        assert isinstance(policy.action_spec, BoxSpec)
        action = {"kind": "box", "dim": policy.action_spec.dim, "dtype": "float32",
                  "output_shape": ["batch", policy.action_spec.dim],
                  "low": _floats(policy.action_spec.low), "high": _floats(policy.action_spec.high),
                  # Policy.scale_action, written out: env_action = clip(a, -1, 1) * scale + offset.
                  "clip": [-1.0, 1.0],
                  "scale": [float(v) for v in policy._scale], "offset": [float(v) for v in policy._offset]}
    normalization: dict[str, Any] | None = None
    if policy.normalizer is not None:
        normalizer = policy.normalizer
        normalization = {
            "in_graph": True,
            "formula": "clip((obs - mean) / sqrt(var + epsilon), -clip, clip)",
            "mean": [float(v) for v in normalizer.mean.double()],
            "var": [float(v) for v in normalizer.var.double()],
            "epsilon": float(normalizer.epsilon), "clip": float(normalizer.clip),
            "count": float(normalizer.count),
        }
    control_rate = env_contract.get("control_rate_hz")
    return {
        "format": CONTRACT_FORMAT,
        "format_version": CONTRACT_FORMAT_VERSION,
        "policy_version": int(policy.version),
        "drl_ros_version": _package_version(),
        "onnx": {"file": ONNX_FILE, "sha256": onnx_sha256, "opset": opset,
                 "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", obs_spec.dim]},
                 "output": {"name": OUTPUT_NAME, "dtype": action["dtype"], "shape": action["output_shape"]},
                 "producer": f"torch {torch.__version__}",
                 "max_abs_diff_vs_torch": max_abs_diff},
        "observation": {"dim": obs_spec.dim, "low": _floats(obs_spec.low), "high": _floats(obs_spec.high),
                        "terms": _observation_terms(env_contract.get("observation_terms"), obs_spec.dim)},
        "normalization": normalization,
        "action": action,
        "actor": dict(policy.architecture),
        "joint_map": env_contract.get("joint_map"),
        "control_rate_hz": None if control_rate is None else float(control_rate),
        "source": dict(source or {}),
    }


def export_onnx(policy: Policy, out_dir: str | Path, *, env_contract: dict[str, Any] | None = None,
                source: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET, verify: bool = True,
                seed: int = 0) -> ExportResult:
    """Write ``out_dir/policy.onnx`` and ``out_dir/policy_contract.json``.

    With ``verify`` (the default) the written files are loaded back through
    :class:`~drl_ros.core.onnx_policy.OnnxPolicy` and compared with the torch policy on random
    observations inside the observation bounds (and a few outside, to exercise normalizer
    clipping); the export fails if they differ by more than ``1e-5`` (or in any discrete action).

    Raises:
        ValueError: the env's observation terms do not tile the observation, or the check failed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graph = onnx_graph_bytes(policy, opset)
    _check_graph(graph)
    sha = hashlib.sha256(graph).hexdigest()
    contract = build_contract(policy, sha, opset=opset, env_contract=env_contract, source=source)
    onnx_path, contract_path = out / ONNX_FILE, out / CONTRACT_FILE
    _write_bytes_atomic(onnx_path, graph)
    max_diff = float("nan")
    if verify:
        # Write the contract, check the round trip, then rewrite it with the measured difference
        # (both writes atomic; a failed check removes the contract so nothing half-checked stays).
        _write_bytes_atomic(contract_path, _dump(contract))
        try:
            max_diff = verify_export(policy, OnnxPolicy.load(contract_path), seed=seed)
        except Exception:
            contract_path.unlink(missing_ok=True)
            raise
        contract["onnx"]["max_abs_diff_vs_torch"] = max_diff
    _write_bytes_atomic(contract_path, _dump(contract))
    return ExportResult(onnx_path, contract_path, contract, max_diff)


def _check_graph(graph: bytes) -> None:
    """Validate the model against the ONNX specification (operators, types, shapes)."""
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("exporting needs the onnx extra: pip install 'drl_ros[onnx]'") from error
    onnx.checker.check_model(onnx.load_model_from_string(graph), full_check=True)


def _dump(contract: dict[str, Any]) -> bytes:
    return (json.dumps(contract, indent=1, allow_nan=False) + "\n").encode("utf-8")


def verification_observations(policy: Policy, n: int = _VERIFY_SAMPLES, seed: int = 0) -> np.ndarray:
    """``(n, obs_dim)`` float32: uniform in the bounded dimensions, N(0, 3²) in unbounded ones,
    and every fourth row pushed far outside the bounds."""
    rng = np.random.default_rng(seed)
    low = np.asarray(policy.observation_spec.low, np.float64)
    high = np.asarray(policy.observation_spec.high, np.float64)
    bounded = np.isfinite(low) & np.isfinite(high)
    obs = rng.normal(0.0, 3.0, size=(n, low.size))
    obs[:, bounded] = rng.uniform(low[bounded], high[bounded], size=(n, int(bounded.sum())))
    obs[::4] *= 10.0
    return obs.astype(np.float32)


def verify_export(policy: Policy, runtime: OnnxPolicy, n: int = _VERIFY_SAMPLES, seed: int = 0) -> float:
    """Max |torch − onnxruntime| over normalized actions; raises ValueError above tolerance."""
    obs = verification_observations(policy, n, seed)
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            expected = policy(torch.from_numpy(obs)).numpy()
    finally:
        policy.train(was_training)
    actual = runtime.normalized_action(obs)
    if expected.shape != actual.shape:
        raise ValueError(f"ONNX output shape {actual.shape} differs from torch's {expected.shape}")
    if policy.discrete:
        mismatches = int(np.count_nonzero(expected != actual))
        if mismatches:
            raise ValueError(f"ONNX policy picks a different discrete action on {mismatches} of {n} observations")
        return 0.0
    diff = float(np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64))))
    if not diff <= VERIFY_TOLERANCE:
        raise ValueError(f"ONNX policy differs from torch by {diff:.3g} (tolerance {VERIFY_TOLERANCE:g})")
    return diff
