"""Flatten nested training state (module and optimizer state dicts) into named tensors plus a JSON
tree, so checkpoints hold everything in safetensors + JSON and nothing is ever pickled."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TENSOR_REF = "__tensor__"


def flatten_state(prefix: str, obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor / array in ``obj`` into ``tensors`` under a dotted name; return the JSON rest."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {TENSOR_REF: prefix}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = torch.from_numpy(np.ascontiguousarray(obj))
        return {TENSOR_REF: prefix, "numpy": True}
    if isinstance(obj, dict):
        # Keys may be ints (optimizer param ids): keep their type so load_state_dict accepts them.
        return {"__dict__": [[key, flatten_state(f"{prefix}.{key}", value, tensors)] for key, value in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [flatten_state(f"{prefix}.{i}", value, tensors) for i, value in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix!r} in a checkpoint")


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(tree, dict):
        if TENSOR_REF in tree:
            tensor = tensors[tree[TENSOR_REF]]
            return tensor.numpy() if tree.get("numpy") else tensor
        if "__dict__" in tree:
            return {key: unflatten_state(value, tensors) for key, value in tree["__dict__"]}
        if "__tuple__" in tree:
            return tuple(unflatten_state(value, tensors) for value in tree["__tuple__"])
        return {key: unflatten_state(value, tensors) for key, value in tree.items()}
    if isinstance(tree, list):
        return [unflatten_state(value, tensors) for value in tree]
    return tree
