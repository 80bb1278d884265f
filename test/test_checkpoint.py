"""Tests for drl_ros.core.checkpoint: round trips, integrity, pickle refusal, crash safety."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from drl_ros.core import checkpoint as ckpt
from drl_ros.core.checkpoint import (
    CheckpointError,
    clean_orphans,
    encode_rng_state,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tensor_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.safetensors"))


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


def test_round_trip_torch_and_numpy_dtypes(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    tensors: dict[str, Any] = {
        "policy.actor.0.weight": torch.randn(4, 3, generator=gen),
        "policy.actor.0.bias": torch.randn(4, dtype=torch.float64, generator=gen),
        "buffer.steps": torch.arange(7, dtype=torch.int64),
        "buffer.pixels": torch.randint(0, 256, (2, 3, 5), dtype=torch.uint8, generator=gen),
        "buffer.done": torch.tensor([True, False, True]),
        "np.f32": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
        "np.f64": np.array([1.5, -2.25]),
        "np.i64": np.array([1, 2, 3], dtype=np.int64),
        "np.u8": np.array([[0, 255]], dtype=np.uint8),
        "np.bool": np.array([False, True]),
        "np.transposed": np.arange(6, dtype=np.float32).reshape(2, 3).T,  # non-contiguous
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    metadata = {"step": 1234, "config": {"lr": 3e-4, "layers": [64, 64]}, "name": "reach"}
    json_path = save_checkpoint(tmp_path / "last", tensors, metadata)
    assert json_path == tmp_path / "last.json"

    loaded, meta = load_checkpoint(tmp_path / "last")
    assert meta == metadata
    assert set(loaded) == set(tensors)
    for name, original in tensors.items():
        expected = torch.from_numpy(np.ascontiguousarray(original)) if isinstance(
            original, np.ndarray
        ) else original
        assert loaded[name].dtype == expected.dtype, name
        assert loaded[name].shape == expected.shape, name
        assert torch.equal(loaded[name], expected), name

    # The JSON is the documented commit record.
    record = json.loads(json_path.read_text())
    assert record["format"] == "drl_ros.checkpoint"
    assert record["format_version"] == 1
    assert len(record["sha256"]) == 64
    assert record["tensors"]["buffer.pixels"] == {"dtype": "uint8", "shape": [2, 3, 5]}
    assert (tmp_path / record["tensor_file"]).is_file()
    # The JSON and tensor file paths are accepted too.
    assert load_checkpoint(json_path)[1] == metadata
    assert load_checkpoint(tmp_path / record["tensor_file"])[1] == metadata


def test_shared_storage_and_gpu_free_inputs(tmp_path: Path) -> None:
    base = torch.arange(10, dtype=torch.float32)
    tensors = {"tied.a": base, "tied.b": base, "view": base.view(2, 5), "half": base[5:]}
    save_checkpoint(tmp_path / "tied", tensors, {})
    loaded, _ = load_checkpoint(tmp_path / "tied")
    for name, t in tensors.items():
        assert torch.equal(loaded[name], t)


def test_overwrite_replaces_and_removes_superseded_tensor_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "last", {"w": torch.zeros(3)}, {"step": 1})
    first_files = _tensor_files(tmp_path)
    save_checkpoint(tmp_path / "last", {"w": torch.ones(3)}, {"step": 2})
    loaded, meta = load_checkpoint(tmp_path / "last")
    assert meta == {"step": 2}
    assert torch.equal(loaded["w"], torch.ones(3))
    files = _tensor_files(tmp_path)
    assert len(files) == 1 and files != first_files
    # Saving identical content again keeps the (same-named) tensor file.
    save_checkpoint(tmp_path / "last", {"w": torch.ones(3)}, {"step": 3})
    assert _tensor_files(tmp_path) == files
    assert load_checkpoint(tmp_path / "last")[1] == {"step": 3}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_save_creates_missing_parent_folders(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "run" / "policies" / "policy", {"w": torch.ones(2)}, {"step": 1})
    loaded, meta = load_checkpoint(tmp_path / "run" / "policies" / "policy")
    assert meta == {"step": 1} and torch.equal(loaded["w"], torch.ones(2))


def test_bad_inputs_leave_no_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "missing" / "x", {"w": torch.zeros(1)}, {"bad": object()})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "x", {"w": torch.zeros(1)}, {"bad": object()})
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "x", {"w": torch.zeros(1)}, {"loss": float("nan")})
    with pytest.raises(TypeError, match="metadata"):
        save_checkpoint(tmp_path / "x", {"w": [1.0, 2.0]}, {})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="extension"):
        save_checkpoint(tmp_path / "x.pt", {"w": torch.zeros(1)}, {})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Integrity and refusal
# ---------------------------------------------------------------------------------------------


def test_tampered_tensor_bytes_are_refused(tmp_path: Path) -> None:
    json_path = save_checkpoint(tmp_path / "last", {"w": torch.arange(100.0)}, {"step": 1})
    tensor_path = tmp_path / json.loads(json_path.read_text())["tensor_file"]
    data = bytearray(tensor_path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the tensor payload
    tensor_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256") as info:
        load_checkpoint(tmp_path / "last")
    assert tensor_path.name in str(info.value)


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "config.json").write_text('{"lr": 1}')
    with pytest.raises(CheckpointError, match="not a drl_ros checkpoint"):
        load_checkpoint(tmp_path / "config")
    json_path = save_checkpoint(tmp_path / "last", {"w": torch.zeros(2)}, {})
    record = json.loads(json_path.read_text())
    (tmp_path / record["tensor_file"]).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path / "last")
    # A crafted JSON cannot point outside its directory.
    record["tensor_file"] = "../evil.0123456789abcdef.safetensors"
    json_path.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="bare file name"):
        load_checkpoint(tmp_path / "last")


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pickles_are_refused_without_executing_them(tmp_path: Path) -> None:
    # Honesty check: the payload really does run when unpickled.
    probe = tmp_path / "probe_marker"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()

    marker = tmp_path / "marker"
    payload = pickle.dumps(_Payload(marker))
    candidates = []
    for name in ("evil.pkl", "evil.pt", "evil.pth", "evil_noext", "evil2.json"):
        path = tmp_path / name
        path.write_bytes(payload)
        candidates.append(path)
    torch.save({"w": torch.zeros(1)}, tmp_path / "torch_zip")  # zip archive, no extension
    candidates.append(tmp_path / "torch_zip")
    candidates.append(tmp_path / "evil2")  # stem whose .json is a pickle
    for path in candidates:
        with pytest.raises(CheckpointError, match="never loaded because unpickling can execute"):
            load_checkpoint(path)
    assert not marker.exists()


def test_loader_never_calls_torch_load_or_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path / "last", {"w": torch.ones(2)}, {"a": 1})

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle-based loading was called")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    tensors, meta = load_checkpoint(tmp_path / "last")
    assert meta == {"a": 1} and torch.equal(tensors["w"], torch.ones(2))


# ---------------------------------------------------------------------------------------------
# Orphans and rolling checkpoints
# ---------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_clean_orphans(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "last", {"w": torch.zeros(3)}, {"step": 1})
    kept = set(tmp_path.iterdir())
    dead = _dead_pid()
    orphan_tmp = tmp_path / f".last.safetensors.tmp-{dead}-abc123"
    orphan_json_tmp = tmp_path / f".last.json.tmp-{dead}-00ff"
    orphan_tensor = tmp_path / "last.0123456789abcdef.safetensors"
    never_committed = tmp_path / "other.fedcba9876543210.safetensors"
    live_tmp = tmp_path / f".last.json.tmp-{os.getpid()}-beef"  # a writer that is alive
    unrelated = tmp_path / "notes.txt"
    foreign_json = tmp_path / "weird.json"
    foreign_tensor = tmp_path / "weird.0000000000000000.safetensors"
    for path in (orphan_tmp, orphan_json_tmp, orphan_tensor, never_committed, live_tmp,
                 unrelated, foreign_tensor):
        path.write_bytes(b"x")
    foreign_json.write_text("{ not json")  # unreadable JSON: its stem's tensors are kept

    removed = clean_orphans(tmp_path)
    assert set(removed) == {orphan_tmp, orphan_json_tmp, orphan_tensor, never_committed}
    assert set(tmp_path.iterdir()) == kept | {live_tmp, unrelated, foreign_json, foreign_tensor}
    assert load_checkpoint(tmp_path / "last")[1] == {"step": 1}
    assert clean_orphans(tmp_path) == []


def test_rolling_checkpoints(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for step in (5, 100, 20, 3000):
        save_checkpoint(tmp_path / f"checkpoint_{step}", {"w": torch.full((2,), step)},
                        {"step": step})
    save_checkpoint(tmp_path / "last", {"w": torch.full((2,), 3000)}, {"step": 3000})
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_3000"  # numeric, not lexical
    prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in sorted(tmp_path.glob("checkpoint_*.json"))] == [
        "checkpoint_100.json", "checkpoint_3000.json"]
    assert len(_tensor_files(tmp_path)) == 3  # two rolling + last
    assert load_checkpoint(tmp_path / "checkpoint_100")[1] == {"step": 100}
    assert load_checkpoint(tmp_path / "last")[1] == {"step": 3000}
    assert clean_orphans(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Crash safety: SIGKILL during save
# ---------------------------------------------------------------------------------------------

_CHILD_SAVE = textwrap.dedent(
    """
    import sys, torch
    from drl_ros.core.checkpoint import save_checkpoint
    stem, fill = sys.argv[1], float(sys.argv[2])
    save_checkpoint(stem, {"big": torch.full((1 << 20,), fill), "step": torch.tensor(2)},
                    {"step": 2})
    """
)


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("DRL_ROS_CHECKPOINT_CRASH_AT", None)
    env.update(extra)
    return env


def _assert_complete(stem: Path, allowed_steps: set[int]) -> int:
    tensors, meta = load_checkpoint(stem)  # must never raise
    step = meta["step"]
    assert step in allowed_steps
    assert int(tensors["step"]) == step
    assert torch.equal(tensors["big"], torch.full((1 << 20,), float(step)))
    return int(step)


@pytest.mark.parametrize(
    ("stage", "expected_step"),
    [
        ("tensor_tmp_written", 1),
        ("tensor_replaced", 1),
        ("json_tmp_written", 1),
        ("json_replaced", 2),
        ("old_tensor_removed", 2),
    ],
)
def test_sigkill_at_each_save_stage(tmp_path: Path, stage: str, expected_step: int) -> None:
    assert stage in ckpt._CRASH_STAGES
    stem = tmp_path / "last"
    save_checkpoint(stem, {"big": torch.full((1 << 20,), 1.0), "step": torch.tensor(1)},
                    {"step": 1})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD_SAVE, str(stem), "2"],
        env=_child_env(DRL_ROS_CHECKPOINT_CRASH_AT=stage),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr  # the hook really fired
    assert _assert_complete(stem, {1, 2}) == expected_step
    clean_orphans(tmp_path)
    assert _assert_complete(stem, {1, 2}) == expected_step
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert len(_tensor_files(tmp_path)) == 1
    # And the directory is usable again.
    save_checkpoint(stem, {"big": torch.full((1 << 20,), 3.0), "step": torch.tensor(3)},
                    {"step": 3})
    assert _assert_complete(stem, {3}) == 3


def test_sigkill_during_first_save_leaves_nothing_loadable_but_clean(tmp_path: Path) -> None:
    stem = tmp_path / "last"
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD_SAVE, str(stem), "2"],
        env=_child_env(DRL_ROS_CHECKPOINT_CRASH_AT="json_tmp_written"),
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(stem)
    assert len(clean_orphans(tmp_path)) == 2  # temp JSON + uncommitted tensor file
    assert list(tmp_path.iterdir()) == []


_CHILD_SAVE_LOOP = textwrap.dedent(
    """
    import sys, torch
    from drl_ros.core.checkpoint import save_checkpoint
    stem, step = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    while True:
        step += 1
        save_checkpoint(stem, {"big": torch.full((1 << 20,), float(step)),
                               "step": torch.tensor(step)}, {"step": step})
    """
)


def test_sigkill_at_random_times(tmp_path: Path) -> None:
    """No injection: kill a process that saves continuously at random moments."""
    stem = tmp_path / "last"
    save_checkpoint(stem, {"big": torch.full((1 << 20,), 1.0), "step": torch.tensor(1)},
                    {"step": 1})
    rng = random.Random(1234)
    last_step = 1
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_SAVE_LOOP, str(stem), str(last_step)],
            env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # Each child continues from the last committed step, so going backwards would mean
        # an older checkpoint resurfaced.
        step = _assert_complete(stem, set(range(last_step, last_step + 1_000_000)))
        last_step = step
        clean_orphans(tmp_path)
        assert _assert_complete(stem, {last_step}) == last_step
        assert len(_tensor_files(tmp_path)) == 1
    assert last_step > 1, "the children never completed a save; the test proved nothing"


# ---------------------------------------------------------------------------------------------
# RNG state
# ---------------------------------------------------------------------------------------------


def _draws(gen: np.random.Generator) -> tuple[Any, ...]:
    return (
        [random.random() for _ in range(3)],
        random.gauss(0.0, 1.0),
        np.random.rand(3).tolist(),
        float(np.random.standard_normal()),
        gen.random(3).tolist(),
        torch.rand(3).tolist(),
        torch.randn(2).tolist(),
    )


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.MT19937])
def test_rng_state_round_trip_through_checkpoint(tmp_path: Path, bit_generator: Any) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    gen = np.random.Generator(bit_generator(4))
    _draws(gen)  # advance, including the cached-gaussian state
    random.gauss(0.0, 1.0)  # leave a gauss_next pending
    np.random.standard_normal()  # leave a cached gaussian pending

    json_state, rng_tensors = encode_rng_state(gen)
    save_checkpoint(tmp_path / "last", {"w": torch.zeros(1), **rng_tensors}, {"rng": json_state})
    expected = _draws(gen)

    # Scramble everything, then restore from disk.
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    gen2 = np.random.Generator(bit_generator(99))
    tensors, meta = load_checkpoint(tmp_path / "last")
    restore_rng_state(meta["rng"], tensors, gen2)
    assert _draws(gen2) == expected


def test_restore_rng_state_errors() -> None:
    json_state, tensors = encode_rng_state(np.random.default_rng(0))
    with pytest.raises(CheckpointError, match="PCG64"):
        restore_rng_state(json_state, tensors, np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(CheckpointError, match="missing"):
        restore_rng_state(json_state, {}, None)
    json_state_no_gen, tensors = encode_rng_state()
    with pytest.raises(CheckpointError, match="Generator"):
        restore_rng_state(json_state_no_gen, tensors, np.random.default_rng(0))
