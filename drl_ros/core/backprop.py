"""Hand-written backpropagation through the MLPs of actors and critics, and a lean Adam step.

On a CPU, one update of a small network costs far more in per-operator overhead than in
arithmetic: autograd records every forward operator and replays two to four backward nodes for
it, and ``torch.optim.Adam.step`` spends more time in Python than its fused kernel takes. An
update written against these helpers runs the same arithmetic (one ``addmm`` or ``baddbmm`` per
layer and direction, one fused activation-gradient kernel) in a fraction of the operators, with
no autograd graph at all. The parameters stay those of the ``nn.Module``\\ s, so checkpoints,
export and acting are unchanged; only how a gradient is computed differs.

Callers run these under ``torch.no_grad`` or ``torch.inference_mode`` (the updates and
``Policy.act`` do), pass the gradient of their loss with respect to a network's output and
receive the gradients of its parameters (in ``module.parameters()`` order) and, when asked, of
its input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drl_ros.core.networks import EnsembleLinear


def _relu_grad(grad: Tensor, pre: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.threshold_backward(grad, out, 0.0)


def _tanh_grad(grad: Tensor, pre: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.tanh_backward(grad, out)


def _elu_grad(grad: Tensor, pre: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.elu_backward(grad, 1.0, 1, 1, True, out)


def _gelu_grad(grad: Tensor, pre: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.gelu_backward(grad, pre)


def _silu_grad(grad: Tensor, pre: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.silu_backward(grad, pre)


# activation module type -> (forward, gradient from (grad_out, pre-activation, output))
_ACTIVATIONS: dict[type[nn.Module], tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor, Tensor], Tensor]]] = {
    nn.ReLU: (torch.relu, _relu_grad),
    nn.Tanh: (torch.tanh, _tanh_grad),
    nn.ELU: (F.elu, _elu_grad),
    nn.GELU: (F.gelu, _gelu_grad),
    nn.SiLU: (F.silu, _silu_grad),
}


def _check_activation(module: nn.Module) -> None:
    default = {nn.ELU: ("alpha", 1.0), nn.GELU: ("approximate", "none")}.get(type(module))
    if default is not None and getattr(module, default[0]) != default[1]:
        raise ValueError(f"hand-written backprop supports {type(module).__name__} only with {default[0]}={default[1]!r}")


@dataclass
class Tape:
    """What :meth:`MLPBackprop.backward` needs from a forward pass: each linear layer's input and
    each activation's input and output."""

    inputs: list[Tensor]
    pre_activations: list[Tensor]
    activations: list[Tensor]
    broadcast_input: bool


class MLPBackprop:
    """Forward and backward passes of an ``nn.Sequential`` of linear layers (``nn.Linear`` or
    :class:`~drl_ros.core.networks.EnsembleLinear`) and the activations of
    :data:`~drl_ros.core.networks.ACTIVATIONS`, written out by hand.

    An ensemble takes ``(B, in)`` (broadcast to every member) or ``(n, B, in)`` and returns
    ``(n, B, out)``; a plain MLP maps ``(B, in)`` to ``(B, out)``.
    """

    def __init__(self, net: nn.Sequential) -> None:
        self.linears: list[nn.Linear | EnsembleLinear] = []
        self.activations: list[tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor, Tensor], Tensor]]] = []
        kinds = set()
        for module in net:
            if isinstance(module, (nn.Linear, EnsembleLinear)):
                if len(self.activations) != len(self.linears):
                    raise ValueError("hand-written backprop needs an activation between linear layers")
                self.linears.append(module)
                kinds.add(type(module))
            elif type(module) in _ACTIVATIONS:
                if len(self.activations) != len(self.linears) - 1:
                    raise ValueError("hand-written backprop needs a linear layer before each activation")
                _check_activation(module)
                self.activations.append(_ACTIVATIONS[type(module)])
            else:
                raise ValueError(f"hand-written backprop does not support {type(module).__name__}")
        if len(kinds) > 1:
            raise ValueError("hand-written backprop needs linear layers of one kind")
        self.ensemble = kinds == {EnsembleLinear}
        self.ends_with_activation = len(self.activations) == len(self.linears)

    def predict(self, x: Tensor) -> Tensor:
        """The network's output for ``x``, recording nothing."""
        return self._run(x, None)

    def forward(self, x: Tensor) -> tuple[Tensor, Tape]:
        """The network's output for ``x`` and the tape :meth:`backward` needs."""
        tape = Tape([], [], [], self.ensemble and x.dim() == 2)
        return self._run(x, tape), tape

    def _run(self, x: Tensor, tape: Tape | None) -> Tensor:
        if self.ensemble and x.dim() == 2:
            x = x.unsqueeze(0).expand(self.linears[0].weight.shape[0], -1, -1)
        for i, layer in enumerate(self.linears):
            if tape is not None:
                tape.inputs.append(x)
            if self.ensemble:
                x = torch.baddbmm(layer.bias, x, layer.weight)
            else:
                x = torch.addmm(layer.bias, x, layer.weight.t())
            if i < len(self.activations):
                out = self.activations[i][0](x)
                if tape is not None:
                    tape.pre_activations.append(x)
                    tape.activations.append(out)
                x = out
        return x

    def backward(self, tape: Tape, grad_out: Tensor, param_grads: bool = True,
                 input_grad: bool = False) -> tuple[list[Tensor], Tensor | None]:
        """Gradients for ``grad_out`` (the loss's gradient w.r.t. the output): the parameters'
        (weight, bias per layer, as ``parameters()`` orders them; empty without ``param_grads``)
        and the input's (``None`` without ``input_grad``; summed over members for a broadcast
        ensemble input)."""
        layer_grads: list[tuple[Tensor, Tensor]] = []
        grad = grad_out
        for i in range(len(self.linears) - 1, -1, -1):
            if i < len(self.activations):
                grad = self.activations[i][1](grad, tape.pre_activations[i], tape.activations[i])
            layer, x = self.linears[i], tape.inputs[i]
            if param_grads:
                if self.ensemble:
                    layer_grads.append((torch.bmm(x.transpose(1, 2), grad), grad.sum(1, keepdim=True)))
                else:
                    layer_grads.append((torch.mm(grad.t(), x), grad.sum(0)))
            if i > 0 or input_grad:
                grad = torch.bmm(grad, layer.weight.transpose(1, 2)) if self.ensemble else torch.mm(grad, layer.weight)
        grads = [g for pair in reversed(layer_grads) for g in pair]
        if not input_grad:
            return grads, None
        return grads, grad.sum(0) if tape.broadcast_input else grad


def adam_step(updates: Sequence[tuple[torch.optim.Adam, Sequence[Tensor]]]) -> None:
    """One step of fused ``torch.optim.Adam`` optimizers, each with its gradients (one per
    parameter, in its param group's order), through the fused kernel directly: one kernel call
    for all optimizers that share their hyperparameters.

    The optimizers' own state is read and written, in their own format, so their
    ``state_dict`` and a later ``optimizer.step()`` see exactly what ``step()`` would have left.
    """
    calls: dict[tuple[float, ...], list[list[Tensor]]] = {}
    for optimizer, grads in updates:
        if len(optimizer.param_groups) != 1:
            raise ValueError("adam_step handles one param group per optimizer")
        group = optimizer.param_groups[0]
        if not group.get("fused") or group["amsgrad"] or group["maximize"] or group.get("decoupled_weight_decay"):
            raise ValueError("adam_step needs a fused Adam without amsgrad, maximize or decoupled weight decay")
        params = group["params"]
        if len(grads) != len(params):
            raise ValueError(f"adam_step got {len(grads)} gradients for {len(params)} parameters")
        beta1, beta2 = group["betas"]
        key = (float(group["lr"]), float(beta1), float(beta2), float(group["weight_decay"]), float(group["eps"]))
        lists = calls.setdefault(key, [[], [], [], [], []])
        for p, grad in zip(params, grads):
            state = optimizer.state[p]
            if not state:
                # What Adam._init_group creates for a fused step on a CPU tensor.
                state["step"] = torch.zeros((), dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            for values, value in zip(lists, (p, grad, state["exp_avg"], state["exp_avg_sq"], state["step"])):
                values.append(value)
    for (lr, beta1, beta2, weight_decay, eps), (params, grads, exp_avgs, exp_avg_sqs, steps) in calls.items():
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1, beta2=beta2,
                           weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)


def all_finite_no_grad(tensors: Sequence[Tensor]) -> bool:
    """No NaN or infinity in any of ``tensors``: one fused check over all of them. For tensors
    outside autograd only: the check runs through an in-place kernel (AMP's, with a scale of 1)."""
    found_inf = torch.zeros(())
    torch._amp_foreach_non_finite_check_and_unscale_(list(tensors), found_inf, torch.ones(()))
    return not found_inf.item()
