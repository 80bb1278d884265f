"""Atomic, pickle-free checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is named by a *stem* (``run_dir / "last"``, ``run_dir / "checkpoint_1000"``) and
consists of two files in the same directory::

    <stem>.json                         the commit record (format, version, sha256, metadata)
    <stem>.<sha256[:16]>.safetensors    the tensors, content-addressed

Nothing here ever calls ``torch.load`` or ``pickle``: a checkpoint may cross a trust boundary
(copied from a training machine to a robot), and unpickling executes arbitrary code.  Files that
look pickled (``.pt``, ``.pth``, ``.pkl``, zip archives, pickle opcodes) are refused by name.

Atomicity scheme
----------------
The JSON file is the single commit record; the tensor file it names is immutable once written,
because its name contains the hash of its bytes.  ``save_checkpoint`` does, in this order:

1. serialize the tensors to a temporary file ``.<stem>.safetensors.tmp-<pid>-<random>`` in the
   target directory, ``fsync`` it, and hash it (sha256);
2. ``os.replace`` it to ``<stem>.<sha256[:16]>.safetensors`` and ``fsync`` the directory.
   The previous JSON still names the *previous* tensor file, which is untouched, so the previous
   checkpoint is still complete and loadable;
3. write the new JSON (naming the new tensor file and its full sha256) to a temporary file,
   ``fsync`` it, ``os.replace`` it onto ``<stem>.json`` and ``fsync`` the directory.  This single
   rename is the commit point: before it readers see the old checkpoint, after it the new one;
4. only then delete the tensor file the previous JSON named (if it differs).

Killing the process at any point therefore leaves either the previous complete checkpoint or the
new complete checkpoint, plus at worst some garbage: a temporary file (steps 1 and 3) or an
unreferenced tensor file (between steps 2 and 4).  ``clean_orphans`` removes that garbage; call
it at start-up, before anything in that process writes to the directory.  It must not run
concurrently with a ``save_checkpoint`` into the same directory from another process (it could
delete that save's tensor file between steps 2 and 3); temporary files whose writer is still
alive are left alone.

``DRL_ROS_CHECKPOINT_CRASH_AT`` is a *test hook only*: when this environment variable names one
of the stages in ``_CRASH_STAGES``, the process SIGKILLs itself there, so tests can prove the
claims above deterministically.  It is read once at import time and costs one ``is None`` check
per stage otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import safetensors.torch
import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "checkpoint_exists",
    "clean_orphans",
    "encode_rng_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT: Final = "drl_ros.checkpoint"
FORMAT_VERSION: Final = 1

_JSON_SUFFIX: Final = ".json"
_TENSOR_SUFFIX: Final = ".safetensors"
_HASH_CHARS: Final = 16
# `<stem>.<16 hex>.safetensors`: the content-addressed tensor files this module writes.
_TENSOR_FILE_RE: Final = re.compile(r"^(?P<stem>.+)\.(?P<hash>[0-9a-f]{16})\.safetensors$")
# `.<name>.tmp-<pid>-<random hex>`: temporary files of an in-progress (or killed) write.
_TMP_FILE_RE: Final = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<rand>[0-9a-f]+)$")

# Suffixes of formats that are pickles (or zip archives of pickles, like torch.save and SB3).
_PICKLE_SUFFIXES: Final = frozenset(
    {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".zip", ".tar", ".joblib", ".npz"}
)
_ZIP_MAGIC: Final = b"PK\x03\x04"
# Pickle protocols 2..5 start with the PROTO opcode; protocol 0/1 have no magic number.
_PICKLE_PROTO_OPCODE: Final = 0x80

_CRASH_STAGES: Final = (
    "tensor_tmp_written",  # step 1 done: temporary tensor file written and fsynced
    "tensor_replaced",  # step 2 done: content-addressed tensor file in place
    "json_tmp_written",  # step 3 half done: temporary JSON written, not yet renamed
    "json_replaced",  # step 3 done: new checkpoint committed
    "old_tensor_removed",  # step 4 done
)
# Test hook (see module docstring).  Read once so a normal save costs nothing.
_CRASH_AT: Final = os.environ.get("DRL_ROS_CHECKPOINT_CRASH_AT") or None

_READ_CHUNK: Final = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, tampered with, or not in the drl_ros format."""


# --------------------------------------------------------------------------------------------
# Low-level file helpers
# --------------------------------------------------------------------------------------------


def _crash_point(stage: str) -> None:
    """Test hook: SIGKILL this process at ``stage`` if ``DRL_ROS_CHECKPOINT_CRASH_AT`` says so."""
    if _CRASH_AT is not None and _CRASH_AT == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a renamed file is not, until its dir is)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open directories (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _temp_path(final: Path) -> Path:
    """A unique temporary name next to ``final``, recognisable by ``_TMP_FILE_RE``."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")


def _fsync_file(path: Path) -> None:
    # fsync acts on the inode, so a second descriptor flushes what another writer wrote.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes_atomic(final: Path, data: bytes, *, crash_stage_tmp: str | None = None) -> None:
    """Write ``data`` to ``final`` atomically: temp file, fsync, ``os.replace``, fsync dir."""
    tmp = _temp_path(final)
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if crash_stage_tmp is not None:
            _crash_point(crash_stage_tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(final.parent)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _json_path(stem: Path) -> Path:
    # Append rather than `with_suffix`: stems such as "checkpoint_1.5" must keep their dot.
    return stem.with_name(stem.name + _JSON_SUFFIX)


def _refuse_pickle(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: refusing to load {why}: pickled files (torch.save .pt/.pth, .pkl, "
        "Stable-Baselines3 .zip) are never loaded because unpickling can execute arbitrary "
        "code. Convert it offline, in a trusted environment, to a drl_ros checkpoint "
        "(<stem>.json + safetensors) with save_checkpoint()."
    )


def _looks_pickled(head: bytes) -> bool:
    return head.startswith(_ZIP_MAGIC) or (len(head) >= 2 and head[0] == _PICKLE_PROTO_OPCODE)


def _resolve_json_path(path_stem: str | os.PathLike[str]) -> Path:
    """Map what a user passed (stem, ``.json``, tensor file) to the checkpoint's JSON path."""
    path = Path(path_stem)
    suffix = path.suffix.lower()
    if suffix in _PICKLE_SUFFIXES:
        raise _refuse_pickle(path, f"a '{suffix}' file")
    if suffix == _JSON_SUFFIX:
        return path
    if suffix == _TENSOR_SUFFIX:
        # Accept the tensor file itself; its JSON is named by the stem before the hash.
        match = _TENSOR_FILE_RE.match(path.name)
        stem_name = match.group("stem") if match else path.name[: -len(_TENSOR_SUFFIX)]
        return path.with_name(stem_name + _JSON_SUFFIX)
    if path.is_file():
        # An extension-less file given as the "stem": sniff it rather than guess.
        with open(path, "rb") as f:
            head = f.read(8)
        if _looks_pickled(head):
            raise _refuse_pickle(path, "a pickle/zip file")
        if not _json_path(path).exists():
            raise CheckpointError(
                f"{path}: not a drl_ros checkpoint; pass the checkpoint stem (the path "
                f"without '.json') or the '.json' file"
            )
    return _json_path(path)


# --------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------


def _to_cpu_tensors(tensors: Mapping[str, torch.Tensor | np.ndarray]) -> dict[str, torch.Tensor]:
    """Contiguous CPU torch tensors, with no two entries sharing storage (safetensors refuses)."""
    out: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensor names must be non-empty str, got {name!r}")
        if isinstance(value, np.ndarray):
            array = value
            if not array.dtype.isnative:
                array = array.astype(array.dtype.newbyteorder("="))
            if not array.flags.writeable:
                array = array.copy()  # torch.from_numpy warns on read-only arrays
            tensor = torch.from_numpy(np.ascontiguousarray(array))
        elif isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu")
        else:
            raise TypeError(
                f"tensor {name!r}: expected a torch.Tensor or numpy.ndarray, "
                f"got {type(value).__name__}; put non-tensor state in the metadata"
            )
        tensor = tensor.contiguous()
        if tensor.numel() > 0:
            storage = tensor.untyped_storage().data_ptr()
            if storage in seen_storages:
                # Tied weights / views of one buffer: store an independent copy.
                tensor = tensor.clone()
                storage = tensor.untyped_storage().data_ptr()
            seen_storages.add(storage)
        out[name] = tensor
    return out


def _read_json_record(json_path: Path) -> dict[str, Any]:
    """Read and validate a checkpoint JSON (format, version, fields); no tensor access."""
    try:
        raw = json_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{json_path}: checkpoint not found") from None
    if _looks_pickled(raw[:8]):
        raise _refuse_pickle(json_path, "a pickle/zip file")
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{json_path}: not a drl_ros checkpoint (invalid JSON: {exc})") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not a drl_ros checkpoint (missing format={FORMAT!r})")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path}: unsupported checkpoint format_version {version!r} "
            f"(this drl_ros reads version {FORMAT_VERSION})"
        )
    tensor_file = record.get("tensor_file")
    sha = record.get("sha256")
    if not isinstance(tensor_file, str) or not _TENSOR_FILE_RE.match(tensor_file):
        raise CheckpointError(f"{json_path}: invalid tensor_file entry {tensor_file!r}")
    if Path(tensor_file).name != tensor_file:
        # Only a bare file name in the same directory: no path traversal from a crafted JSON.
        raise CheckpointError(f"{json_path}: tensor_file must be a bare file name")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise CheckpointError(f"{json_path}: invalid sha256 entry {sha!r}")
    if not isinstance(record.get("metadata"), dict):
        raise CheckpointError(f"{json_path}: metadata must be a JSON object")
    return record


def save_checkpoint(
    path_stem: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    metadata: Mapping[str, Any],
) -> Path:
    """Atomically save ``tensors`` and JSON ``metadata`` under ``path_stem``.

    Args:
        path_stem: checkpoint name without extension, e.g. ``run_dir / "last"``.  Its directory
            must exist.
        tensors: name -> tensor/array; names may contain dots (``"policy.actor.0.weight"``).
            Tensors are moved to CPU and made contiguous; numpy arrays are loaded back as
            torch tensors.
        metadata: JSON-serializable mapping (strict JSON: NaN/inf are rejected, because other
            tools read these files).

    Returns:
        The path of the JSON commit record, ``<stem>.json``.

    Raises:
        TypeError: a tensor is neither a torch tensor nor a numpy array.
        ValueError: ``metadata`` is not JSON-serializable.
    """
    stem = Path(path_stem)
    if stem.suffix.lower() in {_JSON_SUFFIX, _TENSOR_SUFFIX} | _PICKLE_SUFFIXES:
        raise ValueError(f"{stem}: pass a checkpoint stem without an extension")
    directory = stem.parent
    json_path = _json_path(stem)
    cpu_tensors = _to_cpu_tensors(tensors)
    index = {
        name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
        for name, t in cpu_tensors.items()
    }
    # Validate metadata before touching the disk, so a bad call leaves no garbage behind.
    try:
        json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{json_path}: metadata is not strict-JSON-serializable: {exc}") from exc

    # Remember which tensor file the current commit record names, to delete it after commit.
    previous_tensor_file: str | None = None
    if json_path.exists():
        try:
            previous_tensor_file = _read_json_record(json_path)["tensor_file"]
        except CheckpointError:
            previous_tensor_file = None  # not ours / corrupt: leave any files alone

    # Step 1: tensors -> temporary file, fsync, hash.
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(stem.with_name(stem.name + _TENSOR_SUFFIX))
    try:
        safetensors.torch.save_file(cpu_tensors, str(tmp))
        _fsync_file(tmp)
        sha = _sha256_file(tmp)
        _crash_point("tensor_tmp_written")
        # Step 2: content-addressed name; the previous checkpoint's files are untouched.
        tensor_name = f"{stem.name}.{sha[:_HASH_CHARS]}{_TENSOR_SUFFIX}"
        os.replace(tmp, directory / tensor_name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    _crash_point("tensor_replaced")

    # Step 3: the commit record.
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensor_file": tensor_name,
        "sha256": sha,
        "tensors": index,
        "metadata": dict(metadata),
    }
    text = json.dumps(record, indent=1, allow_nan=False, sort_keys=False) + "\n"
    _write_bytes_atomic(json_path, text.encode("utf-8"), crash_stage_tmp="json_tmp_written")
    _crash_point("json_replaced")

    # Step 4: the superseded tensor file is garbage now (same content => same name, keep it).
    if previous_tensor_file is not None and previous_tensor_file != tensor_name:
        (directory / previous_tensor_file).unlink(missing_ok=True)
    _crash_point("old_tensor_removed")
    return json_path


def load_checkpoint(
    path_stem: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and verify a checkpoint written by :func:`save_checkpoint`.

    Args:
        path_stem: the stem (``run_dir / "last"``), or its ``.json`` file, or its tensor file.

    Returns:
        ``(tensors, metadata)``: CPU torch tensors by name, and the user metadata.

    Raises:
        CheckpointError: missing files, not the drl_ros format, sha256 mismatch, or a pickled
            file (which is never opened as a pickle).
    """
    json_path = _resolve_json_path(path_stem)
    record = _read_json_record(json_path)
    tensor_path = json_path.parent / record["tensor_file"]
    try:
        # Hash and parse the same bytes: no window for the file to change in between.
        data = tensor_path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{tensor_path}: tensor file named by {json_path} is missing"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != record["sha256"]:
        raise CheckpointError(
            f"{tensor_path}: sha256 mismatch (expected {record['sha256']}, got {actual}); "
            "the tensor file is corrupt or was modified"
        )
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{tensor_path}: invalid safetensors data: {exc}") from exc
    index = record.get("tensors")
    if isinstance(index, dict):
        if set(index) != set(tensors):
            raise CheckpointError(f"{json_path}: tensor index does not match {tensor_path}")
        for name, entry in index.items():
            t = tensors[name]
            if entry != {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}:
                raise CheckpointError(f"{json_path}: tensor {name!r} does not match its index")
    return tensors, record["metadata"]


def checkpoint_exists(path_stem: str | os.PathLike[str]) -> bool:
    """Whether a commit record exists for ``path_stem`` (cheap; does not verify the tensors)."""
    return _json_path(Path(path_stem)).is_file()


# --------------------------------------------------------------------------------------------
# Directory maintenance
# --------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of ours may be mid-write
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:  # pragma: no cover - e.g. pid out of range
        return False
    return True


def _iter_records(directory: Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """(json path, record or None if unreadable) for every ``*.json`` in ``directory``."""
    for path in sorted(directory.glob("*" + _JSON_SUFFIX)):
        if path.name.startswith("."):
            continue
        try:
            yield path, _read_json_record(path)
        except (CheckpointError, OSError):
            yield path, None


def clean_orphans(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove leftovers of interrupted saves in ``directory``; return the removed paths.

    Removes (1) temporary files of killed writers (``.<name>.tmp-<pid>-<hex>`` whose pid is no
    longer alive) and (2) content-addressed tensor files that no checkpoint JSON names.  A tensor
    file is kept if a JSON with its stem exists but cannot be read (never guess about data we do
    not understand).  Do not call concurrently with a save into the same directory.
    """
    root = Path(directory)
    referenced: set[str] = set()
    unreadable_stems: set[str] = set()
    for json_path, record in _iter_records(root):
        if record is None:
            unreadable_stems.add(json_path.name[: -len(_JSON_SUFFIX)])
        else:
            referenced.add(record["tensor_file"])
    removed: list[Path] = []
    for path in sorted(root.iterdir()):
        if not path.is_file():
            continue
        tmp_match = _TMP_FILE_RE.match(path.name)
        if tmp_match is not None:
            if not _pid_alive(int(tmp_match.group("pid"))):
                path.unlink(missing_ok=True)
                removed.append(path)
            continue
        tensor_match = _TENSOR_FILE_RE.match(path.name)
        if (
            tensor_match is not None
            and path.name not in referenced
            and tensor_match.group("stem") not in unreadable_stems
        ):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        _fsync_directory(root)
    return removed


def list_checkpoints(
    directory: str | os.PathLike[str], prefix: str = "checkpoint"
) -> list[tuple[int, Path]]:
    """``(step, stem)`` of every ``<prefix>_<step>.json`` in ``directory``, by ascending step."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)\.json$")
    found: list[tuple[int, Path]] = []
    root = Path(directory)
    if not root.is_dir():
        return found
    for path in root.iterdir():
        match = pattern.match(path.name)
        if match is not None and path.is_file():
            found.append((int(match.group(1)), path.with_name(path.name[: -len(_JSON_SUFFIX)])))
    found.sort()
    return found


def latest_checkpoint(
    directory: str | os.PathLike[str], prefix: str = "checkpoint"
) -> Path | None:
    """Stem of the highest-step ``<prefix>_<step>`` checkpoint in ``directory``, else None.

    Rolling checkpoints are saved as ``save_checkpoint(run_dir / f"{prefix}_{step}", ...)``;
    a ``last`` stem can be kept beside them with a second save.
    """
    found = list_checkpoints(directory, prefix)
    return found[-1][1] if found else None


def prune_checkpoints(
    directory: str | os.PathLike[str], prefix: str = "checkpoint", keep: int = 3
) -> list[Path]:
    """Delete all but the ``keep`` highest-step ``<prefix>_<step>`` checkpoints.

    The JSON is removed before its tensor file, so an interruption leaves an orphan tensor file
    (collected by :func:`clean_orphans`), never a JSON naming a missing file.
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    removed: list[Path] = []
    root = Path(directory)
    for _, stem in list_checkpoints(root, prefix)[:-keep]:
        json_path = _json_path(stem)
        try:
            tensor_file: str | None = _read_json_record(json_path)["tensor_file"]
        except CheckpointError:
            tensor_file = None
        json_path.unlink(missing_ok=True)
        removed.append(json_path)
        if tensor_file is not None:
            _fsync_directory(root)  # the JSON is gone for good before its tensors go
            (root / tensor_file).unlink(missing_ok=True)
            removed.append(root / tensor_file)
    if removed:
        _fsync_directory(root)
    return removed


# --------------------------------------------------------------------------------------------
# RNG state
# --------------------------------------------------------------------------------------------


def _jsonable_bit_generator_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """numpy bit-generator state dict -> JSON (ndarrays, e.g. MT19937's key, become lists)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, Mapping):
            out[key] = _jsonable_bit_generator_state(value)
        elif isinstance(value, np.ndarray):
            out[key] = value.tolist()
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value  # Python ints of any size are fine in JSON
    return out


def _numpy_bit_generator_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_jsonable_bit_generator_state` (MT19937 wants its key as uint32)."""
    out = dict(state)
    inner = out.get("state")
    if out.get("bit_generator") == "MT19937" and isinstance(inner, Mapping):
        out["state"] = {**inner, "key": np.asarray(inner["key"], dtype=np.uint32)}
    return out


def encode_rng_state(
    generator: np.random.Generator | None = None, *, tensor_prefix: str = "rng."
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Capture Python ``random``, NumPy's global RNG, ``generator`` and torch's CPU RNG.

    Returns:
        ``(json_state, tensors)``: put ``json_state`` into the checkpoint metadata (e.g. under
        ``"rng"``) and merge ``tensors`` (``"<tensor_prefix>torch"``, the uint8 state of
        ``torch.get_rng_state()``) into the checkpoint tensors.  CUDA generators are not
        captured: ``core`` resumes bitwise only on CPU.
    """
    version, internal, gauss_next = random.getstate()
    json_state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy_global": _jsonable_bit_generator_state(np.random.get_state(legacy=False)),
    }
    if generator is not None:
        json_state["numpy_generator"] = _jsonable_bit_generator_state(
            generator.bit_generator.state
        )
    tensors = {f"{tensor_prefix}torch": torch.get_rng_state().clone()}
    return json_state, tensors


def restore_rng_state(
    json_state: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    generator: np.random.Generator | None = None,
    *,
    tensor_prefix: str = "rng.",
) -> None:
    """Restore what :func:`encode_rng_state` captured (``generator`` is updated in place).

    Raises:
        CheckpointError: a part that was requested (``generator``) or is always saved is missing.
    """
    try:
        py = json_state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
        np.random.set_state(_numpy_bit_generator_state(json_state["numpy_global"]))
        torch.set_rng_state(tensors[f"{tensor_prefix}torch"].to(torch.uint8).contiguous())
    except KeyError as exc:
        raise CheckpointError(f"RNG state is missing {exc}") from exc
    if generator is not None:
        if "numpy_generator" not in json_state:
            raise CheckpointError("RNG state holds no numpy Generator state")
        state = _numpy_bit_generator_state(json_state["numpy_generator"])
        saved_kind = state.get("bit_generator")
        current_kind = type(generator.bit_generator).__name__
        if saved_kind != current_kind:
            raise CheckpointError(
                f"RNG state is for a {saved_kind} Generator, got a {current_kind} one"
            )
        generator.bit_generator.state = state
