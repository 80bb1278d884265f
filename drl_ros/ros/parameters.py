"""ROS parameters declared from one config dataclass per node (DESIGN.md section 8).

Every field becomes a parameter of the same name whose description is the field's docstring, so
``ros2 param describe`` shows the same text as the code. Values come back through
:func:`drl_ros.core.config_loading.load_config`, so a parameter YAML is checked as strictly as a
run configuration: a wrong type or a failed ``__post_init__`` check names the field.

Supported field types: bool, int, float, str and lists of them. ``dict`` / ``Any`` fields are
carried as a JSON string (ROS parameters have no mapping type).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from drl_ros.core.config_loading import field_docs, load_config

T = TypeVar("T")

_SCALARS = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER, float: Parameter.Type.DOUBLE,
            str: Parameter.Type.STRING}
_ARRAYS = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
           float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}


def _parameter_type(tp: Any) -> tuple[Parameter.Type, bool]:
    """ROS parameter type for a field annotation, and whether it travels as JSON."""
    origin = typing.get_origin(tp)
    if tp in _SCALARS:
        return _SCALARS[tp], False
    if origin is list:
        (item,) = typing.get_args(tp) or (str,)
        if item in _ARRAYS:
            return _ARRAYS[item], False
    if tp is typing.Any or origin is dict or tp is dict:
        return Parameter.Type.STRING, True
    raise TypeError(f"no ROS parameter type for {tp!r}")


def declare_config(node: Node, cls: type[T], prefix: str = "") -> T:
    """Declare one parameter per field of ``cls`` on ``node`` and return the config they hold."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = prefix + f.name
        ptype, as_json = _parameter_type(hints[f.name])
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to become a ROS parameter")
        descriptor = ParameterDescriptor(name=name, type=ptype.value, description=docs.get(f.name, ""),
                                         read_only=False)
        if as_json:
            default = json.dumps(default)
        if isinstance(default, list) and not default:
            # An empty list carries no element type: declare the type alone, keep the default.
            node.declare_parameter(name, ptype, descriptor)
            try:
                value = node.get_parameter(name).value
            except ParameterUninitializedException:
                value = default
        else:
            value = node.declare_parameter(name, default, descriptor).value
        if as_json:
            try:
                value = json.loads(value) if value else {}
            except json.JSONDecodeError as error:
                raise ValueError(f"parameter {name}: not JSON ({error})") from error
        values[f.name] = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value
    return load_config(cls, values, source_name=f"{node.get_fully_qualified_name()} parameters")
