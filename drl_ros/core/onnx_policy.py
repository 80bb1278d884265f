"""Run an exported policy with onnxruntime and numpy alone: the robot-computer side of export.

This module imports no torch, directly or through other drl_ros modules (only the standard
library and numpy at import time, onnxruntime when a policy is loaded), so a robot computer
needs ``pip install numpy onnxruntime`` and the two exported files, nothing else. A test runs it
with torch made unimportable.

The policy contract (``policy_contract.json``, written by :mod:`drl_ros.core.export`)::

    format, format_version   "drl_ros.policy_contract", 1
    policy_version           Policy.version at export (the learner's weight version)
    drl_ros_version          package version that exported it
    onnx                     file (beside the contract), sha256 of its bytes, opset, input / output
                             name, dtype and shape ("batch" is dynamic), producer, and the largest
                             |torch − onnxruntime| difference the exporter measured
    observation              dim, low, high (per value, "inf"/"-inf" where unbounded), and terms:
                             [{"name", "start", "stop"}, ...] in order (null if the env declares none)
    normalization            null, or the running statistics the graph already applies (for the
                             record; do not normalize again): mean, var, epsilon, clip, count
    action                   {"kind": "box", dim, low, high, clip [-1, 1], scale, offset}:
                                 env_action = clip(graph_output, -1, 1) * scale + offset
                             or {"kind": "discrete", n}: the graph outputs the int64 index
    actor                    architecture the policy was built with (actor kind, hidden sizes, ...)
    joint_map                what the action and joint observations refer to on the robot (joint
                             names in order, control mode), or null
    control_rate_hz          the rate the policy was trained to act at, or null
    source                   where it came from (run folder, env id, training steps)

Loading hashes the ONNX bytes and refuses them unless the sha256 matches the contract; the same
bytes are then handed to onnxruntime, so there is no window for the file to change in between.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = [
    "CONTRACT_FILE",
    "CONTRACT_FORMAT",
    "CONTRACT_FORMAT_VERSION",
    "INPUT_NAME",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "ContractError",
    "OnnxPolicy",
    "load_contract",
]

CONTRACT_FORMAT: Final = "drl_ros.policy_contract"
CONTRACT_FORMAT_VERSION: Final = 1
CONTRACT_FILE: Final = "policy_contract.json"
ONNX_FILE: Final = "policy.onnx"
INPUT_NAME: Final = "obs"
OUTPUT_NAME: Final = "action"

_REQUIRED_KEYS: Final = ("format", "format_version", "policy_version", "onnx", "observation", "action")


class ContractError(ValueError):
    """A policy contract or its ONNX file is missing, malformed, tampered with or inconsistent."""


def _decode_floats(values: list[float | str]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)  # float("inf") parses "inf"


def load_contract(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """Read and check a contract; ``path`` is the contract JSON or the folder holding it.

    Returns ``(contract, onnx_path)``.
    """
    path = Path(path)
    contract_path = path / CONTRACT_FILE if path.is_dir() else path
    try:
        contract = json.loads(contract_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{contract_path}: no policy contract here (export with `drl-ros export RUN`)") from None
    except json.JSONDecodeError as error:
        raise ContractError(f"{contract_path}: not valid JSON: {error}") from None
    if not isinstance(contract, dict) or contract.get("format") != CONTRACT_FORMAT:
        raise ContractError(f"{contract_path}: not a drl_ros policy contract")
    missing = [key for key in _REQUIRED_KEYS if key not in contract]
    if missing:
        raise ContractError(f"{contract_path}: missing {', '.join(missing)}")
    if int(contract["format_version"]) > CONTRACT_FORMAT_VERSION:
        raise ContractError(f"{contract_path}: contract format {contract['format_version']} is newer than this "
                            f"runtime understands ({CONTRACT_FORMAT_VERSION}); upgrade drl_ros")
    onnx_file = str(contract["onnx"].get("file", ""))
    # The contract may come from anywhere: it may only name a file beside itself.
    if not onnx_file or Path(onnx_file).name != onnx_file or onnx_file in (".", ".."):
        raise ContractError(f"{contract_path}: onnx.file must be a file name beside the contract, got {onnx_file!r}")
    return contract, contract_path.parent / onnx_file


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("running an exported policy needs onnxruntime: pip install onnxruntime") from error
    return onnxruntime


class OnnxPolicy:
    """An exported policy served by onnxruntime: observation in, env / robot action out.

    ``act`` on one observation ``(obs_dim,)`` returns ``(act_dim,)`` float32 (an ``np.int64`` for
    discrete actions); on a batch ``(B, obs_dim)`` it returns ``(B, act_dim)`` (``(B,)``). The
    single-observation path reuses pre-bound input and output buffers (onnxruntime I/O binding),
    so it allocates only the returned array; a lock makes it safe to share between threads.

    Args:
        contract: the parsed contract.
        model: the ONNX bytes; refused unless their sha256 equals ``contract["onnx"]["sha256"]``.
        intra_op_threads: onnxruntime threads per call. One is fastest for small MLPs at batch
            1 (no thread hand-off) and leaves the robot computer's other cores alone.
    """

    def __init__(self, contract: dict[str, Any], model: bytes, *, intra_op_threads: int = 1) -> None:
        expected = str(contract["onnx"]["sha256"])
        actual = hashlib.sha256(model).hexdigest()
        if actual != expected:
            raise ContractError(f"ONNX file sha256 mismatch (contract says {expected}, file is {actual}): the "
                                "file was modified or belongs to another export; refusing to load it")
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.contract = contract
        self.obs_dim = int(contract["observation"]["dim"])
        action = contract["action"]
        self.discrete = action["kind"] == "discrete"
        if not self.discrete and action["kind"] != "box":
            raise ContractError(f"unknown action kind {action['kind']!r}")
        self.input_name = str(contract["onnx"]["input"]["name"])
        self.output_name = str(contract["onnx"]["output"]["name"])
        self._check_graph()

        if self.discrete:
            self.act_dim = 1
            self._out1 = np.zeros((1,), dtype=np.int64)
        else:
            self.act_dim = int(action["dim"])
            clip_low, clip_high = (float(v) for v in action.get("clip", (-1.0, 1.0)))
            self._clip_low, self._clip_high = np.float32(clip_low), np.float32(clip_high)
            self._scale = np.asarray(action["scale"], dtype=np.float32)
            self._offset = np.asarray(action["offset"], dtype=np.float32)
            if self._scale.shape != (self.act_dim,) or self._offset.shape != (self.act_dim,):
                raise ContractError(f"action scale / offset must have {self.act_dim} values")
            # Bounds of [-1, 1] (the robots' own normalized actions) make the affine map the
            # identity; skipping it saves two numpy calls per action.
            self._affine = not (np.all(self._scale == 1.0) and np.all(self._offset == 0.0))
            self._out1 = np.zeros((1, self.act_dim), dtype=np.float32)
        # Batch-1 fast path: the graph reads from and writes to these arrays in place, which
        # skips onnxruntime's per-call input conversion and output allocation.
        self._obs1 = np.zeros((1, self.obs_dim), dtype=np.float32)
        self._single_shape = (self.obs_dim,)
        self._binding = self.session.io_binding()
        self._binding.bind_input(self.input_name, "cpu", 0, np.float32, list(self._obs1.shape),
                                 self._obs1.ctypes.data)
        self._binding.bind_output(self.output_name, "cpu", 0, self._out1.dtype, list(self._out1.shape),
                                  self._out1.ctypes.data)
        self._out1_row = self._out1[0]  # a view for Box actions (discrete ones read _out1 itself)
        self._run_bound = self.session.run_with_iobinding
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike[str], **kwargs: Any) -> OnnxPolicy:
        """Load an export: the folder ``drl-ros export`` wrote, or its ``policy_contract.json``."""
        contract, onnx_path = load_contract(path)
        try:
            model = onnx_path.read_bytes()
        except FileNotFoundError:
            raise ContractError(f"{onnx_path}: ONNX file named by the contract is missing") from None
        return cls(contract, model, **kwargs)

    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [self.input_name] or [o.name for o in outputs] != [self.output_name]:
            raise ContractError(f"ONNX graph has inputs {[i.name for i in inputs]} and outputs "
                                f"{[o.name for o in outputs]}; the contract says {self.input_name!r} -> "
                                f"{self.output_name!r}")
        if inputs[0].shape[-1] != self.obs_dim:
            raise ContractError(f"ONNX graph reads {inputs[0].shape[-1]} observation values, the contract "
                                f"says {self.obs_dim}")

    # -- contract fields ----------------------------------------------------------------------
    @property
    def version(self) -> int:
        return int(self.contract["policy_version"])

    @property
    def control_rate_hz(self) -> float | None:
        rate = self.contract.get("control_rate_hz")
        return None if rate is None else float(rate)

    @property
    def joint_map(self) -> Any:
        return self.contract.get("joint_map")

    @property
    def observation_terms(self) -> list[dict[str, Any]] | None:
        terms: list[dict[str, Any]] | None = self.contract["observation"].get("terms")
        return terms

    @property
    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        obs = self.contract["observation"]
        return _decode_floats(obs["low"]), _decode_floats(obs["high"])

    # -- acting -------------------------------------------------------------------------------
    def normalized_action(self, obs: np.ndarray) -> np.ndarray:
        """The graph's output for a batch ``(B, obs_dim)``: normalized actions ``(B, act_dim)``
        float32 in about ``[-1, 1]`` (unclipped), or ``(B,)`` int64 indices."""
        batch = np.ascontiguousarray(obs, dtype=np.float32).reshape(-1, self.obs_dim)
        result: np.ndarray = self.session.run([self.output_name], {self.input_name: batch})[0]
        return result

    def scale_action(self, normalized: np.ndarray) -> np.ndarray:
        """Normalized action → env action, as the contract says (= ``Policy.scale_action``)."""
        if self.discrete:
            return np.asarray(normalized, dtype=np.int64)
        # maximum / minimum rather than np.clip: the same result (NaN stays NaN, for the shield
        # to reject) at half the cost per call, which matters at batch 1.
        out = np.minimum(np.maximum(np.asarray(normalized, dtype=np.float32), self._clip_low), self._clip_high)
        if self._affine:
            np.multiply(out, self._scale, out=out)
            np.add(out, self._offset, out=out)
        return out

    def act(self, obs: np.ndarray) -> Any:
        """Deterministic env action for one observation ``(obs_dim,)`` or a batch ``(B, obs_dim)``."""
        obs = np.asarray(obs)
        if obs.shape != self._single_shape:
            if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
                raise ValueError(f"expected an observation of shape ({self.obs_dim},) or a batch "
                                 f"(B, {self.obs_dim}), got {obs.shape}")
            return self.scale_action(self.normalized_action(obs))
        with self._lock:
            self._obs1[0] = obs  # casts to float32 in place
            self._run_bound(self._binding)
            if self.discrete:
                return self._out1[0]  # a fresh np.int64 scalar
            # The first ufunc allocates the returned array; the rest work in place in it.
            out = np.maximum(self._out1_row, self._clip_low)
            np.minimum(out, self._clip_high, out=out)
            if self._affine:
                np.multiply(out, self._scale, out=out)
                np.add(out, self._offset, out=out)
            return out
