"""Policy files at the Policy.load level: a tampered, foreign or pickled file is refused with a
clear error, and nothing in it is ever executed (on top of test_checkpoint.py's file-level tests)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drl_ros.core.checkpoint import CheckpointError, save_checkpoint
from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec

OBS = BoxSpec((-1.0,) * 4, (1.0,) * 4)
ACT = BoxSpec((-1.0,) * 2, (1.0,) * 2)


class _Payload:
    """Unpickling this creates ``marker``: proof that code in the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    policy = Policy.create(OBS, ACT, "squashed_gaussian", [8, 8], "relu", normalize_observations=True)
    policy.save(tmp_path / "policy")
    return tmp_path / "policy"


def _record(stem: Path) -> dict[str, Any]:
    return json.loads(stem.with_name(stem.name + ".json").read_text())


def _write_record(stem: Path, record: dict[str, Any]) -> None:
    stem.with_name(stem.name + ".json").write_text(json.dumps(record))


def test_an_intact_policy_loads(saved: Path) -> None:
    policy = Policy.load(saved)
    obs = np.zeros((1, 4), dtype=np.float32)
    assert policy.act(obs, deterministic=True).env_action.shape == (1, 2)


def test_flipped_tensor_bytes_are_refused(saved: Path) -> None:
    tensor_file = saved.parent / _record(saved)["tensor_file"]
    data = bytearray(tensor_file.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    tensor_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        Policy.load(saved)


def test_a_swapped_tensor_file_is_refused(saved: Path, tmp_path: Path) -> None:
    """Another policy's tensors under this policy's record: the hash names the exact bytes."""
    other = Policy.create(OBS, ACT, "squashed_gaussian", [8, 8], "relu", normalize_observations=True)
    other.save(tmp_path / "other")
    tensor_file = saved.parent / _record(saved)["tensor_file"]
    tensor_file.write_bytes((tmp_path / _record(tmp_path / "other")["tensor_file"]).read_bytes())
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        Policy.load(saved)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(format="drl_ros.training_state"), "not a drl_ros policy file"),
    (lambda m: m["architecture"].update(hidden_sizes=[16, 16]), "do not match"),
    (lambda m: m["architecture"].update(activation="__import__('os').system('touch pwned')"), "activation"),
    (lambda m: m["architecture"].update(actor="eval"), "actor"),
    (lambda m: m.update(observation_space={"kind": "pickle"}), "space"),
    (lambda m: m.pop("architecture"), "architecture"),
])
def test_tampered_metadata_is_refused_clearly(saved: Path, edit: Any, match: str) -> None:
    record = _record(saved)
    edit(record["metadata"])
    _write_record(saved, record)
    with pytest.raises(CheckpointError, match=match) as info:
        Policy.load(saved)
    assert str(saved) in str(info.value) or "policy" in str(info.value)
    assert not Path("pwned").exists()


def test_consistent_file_with_missing_weights_is_refused(saved: Path, tmp_path: Path) -> None:
    """A well-formed record and hash whose tensors do not fit the architecture (a truncated
    export, or a hand-made file): a clear error, not torch's load_state_dict traceback."""
    metadata = _record(saved)["metadata"]
    policy = Policy.load(saved)
    tensors = {k: v for k, v in policy.state_dict().items() if "mean" not in k}
    save_checkpoint(tmp_path / "partial", tensors, metadata)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        Policy.load(tmp_path / "partial")


def test_pickled_policies_are_refused_and_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(marker))
    (tmp_path / "policy.pt").write_bytes(payload)
    (tmp_path / "policy.pkl").write_bytes(payload)
    (tmp_path / "sb3_model.zip").write_bytes(b"PK\x03\x04" + payload)
    (tmp_path / "noext").write_bytes(payload)
    (tmp_path / "evil.json").write_bytes(payload)  # a pickle posing as the JSON record
    torch.save(Policy.create(OBS, ACT, "squashed_gaussian", [8], "relu").state_dict(), tmp_path / "torch_save")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a pickle loader was called")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    for name in ("policy.pt", "policy.pkl", "sb3_model.zip", "noext", "evil", "torch_save"):
        with pytest.raises(CheckpointError, match="unpickling can execute arbitrary code"):
            Policy.load(tmp_path / name)
    assert not marker.exists()
