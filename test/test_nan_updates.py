"""A non-finite loss or gradient skips the update: every parameter and every optimizer moment
stays as it was (no partial step of one network), and the skip is counted."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from drl_ros.core.algorithms.base import Algorithm
from drl_ros.core.algorithms.ppo import PPO, PPOConfig
from drl_ros.core.algorithms.sac import SAC, SACConfig
from drl_ros.core.backprop import MLPBackprop
from drl_ros.core.buffers import ReplayBuffer, RolloutBatch, compute_gae
from drl_ros.core.spaces import BoxSpec

OBS = BoxSpec((-1.0,) * 3, (1.0,) * 3)
ACT = BoxSpec((-2.0,) * 2, (2.0,) * 2)


def _snapshot(algo: Algorithm) -> dict[str, Any]:
    """Deep copy of every module and optimizer state (tensors cloned)."""
    def copy(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.detach().clone()
        if isinstance(obj, dict):
            return {k: copy(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(copy(v) for v in obj)
        return obj

    return {"modules": {name: copy(m.state_dict()) for name, m in algo.modules().items()},
            "optimizers": {name: copy(o.state_dict()) for name, o in algo.optimizers().items()}}


def _assert_same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"{path} changed"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys changed"
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length changed"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), f"{path}: {a} != {b}"


# -- SAC ------------------------------------------------------------------------------------------


def _sac_and_buffer(seed: int = 0) -> tuple[SAC, ReplayBuffer]:
    torch.manual_seed(seed)
    sac = SAC(OBS, ACT, SACConfig(hidden_sizes=[16, 16], batch_size=32, learning_starts=0))
    replay = ReplayBuffer(256, 3, (2,), 1, seed=seed)
    rng = np.random.default_rng(seed)
    for t in range(100):
        replay.add(rng.uniform(-1, 1, (1, 3)), rng.uniform(-1, 1, (1, 2)), rng.normal(size=1),
                   rng.uniform(-1, 1, (1, 3)), np.array([False]), np.array([t % 25 == 24]))
    return sac, replay


def test_sac_skips_a_batch_with_nan_rewards_and_keeps_every_state() -> None:
    sac, replay = _sac_and_buffer()
    for _ in range(3):  # real optimizer moments to protect
        sac.learn(replay)
    before = _snapshot(sac)
    updates, skipped = sac.updates, sac.skipped_updates
    batch = replay.sample(32)
    batch.reward[5] = float("nan")
    metrics = sac.update(batch)
    assert metrics == {"skipped": 1.0}
    assert sac.skipped_updates == skipped + 1 and sac.updates == updates
    _assert_same(before, _snapshot(sac))
    sac.learn(replay)  # and learning goes on afterwards
    assert sac.updates == updates + 1


def _poison_gradients(net: MLPBackprop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the first parameter gradient of ``net``'s backward pass NaN."""
    backward = net.backward

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        grads, grad_input = backward(*args, **kwargs)
        if grads:
            grads[0] = grads[0] * float("nan")
        return grads, grad_input

    monkeypatch.setattr(net, "backward", poisoned)


@pytest.mark.parametrize("where", ["actor", "critic", "alpha"])
def test_sac_skips_when_one_gradient_is_nan_and_steps_no_network(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN gradient in any one of the three learners leaves all three untouched (the critic
    is not stepped before the actor's gradient is known to be finite)."""
    sac, replay = _sac_and_buffer(1)
    for _ in range(3):
        sac.learn(replay)
    before = _snapshot(sac)
    skipped = sac.skipped_updates
    if where == "alpha":
        sac.target_entropy = float("nan")  # reaches the temperature's gradient alone
    else:
        _poison_gradients(sac._trunk if where == "actor" else sac._critic_net, monkeypatch)
    assert sac.learn(replay) == {"skipped": 1.0}
    assert sac.skipped_updates == skipped + 1
    _assert_same(before, _snapshot(sac))


def test_sac_skips_non_finite_observations() -> None:
    sac, replay = _sac_and_buffer(2)
    sac.learn(replay)
    before = _snapshot(sac)
    batch = replay.sample(32)
    batch.next_obs[0, 0] = float("inf")
    assert sac.update(batch) == {"skipped": 1.0}
    _assert_same(before, _snapshot(sac))


# -- PPO ------------------------------------------------------------------------------------------


def _ppo_rollout(seed: int, nan_reward: bool) -> tuple[PPO, RolloutBatch]:
    torch.manual_seed(seed)
    ppo = PPO(OBS, ACT, PPOConfig(n_steps=64, batch_size=16, n_epochs=2, hidden_sizes=[16, 16]))
    rng = np.random.default_rng(seed)
    steps, envs = 64, 2
    obs = rng.uniform(-1, 1, (steps, envs, 3)).astype(np.float32)
    step = ppo.policy.act(obs.reshape(-1, 3))
    rewards = rng.normal(size=(steps, envs)).astype(np.float32)
    if nan_reward:
        rewards[-1, :] = np.nan  # GAE carries it back through every step of both envs
    values = ppo.value(obs.reshape(-1, 3)).reshape(steps, envs)
    next_values = np.concatenate([values[1:], values[-1:]])
    done = np.zeros((steps, envs), dtype=bool)
    adv, ret = compute_gae(rewards, values, next_values, done, done, 0.99, 0.95)
    batch = RolloutBatch(obs=torch.from_numpy(obs.reshape(-1, 3)), action=torch.from_numpy(step.action),
                         log_prob=torch.from_numpy(step.log_prob), advantage=torch.from_numpy(adv.reshape(-1)),
                         returns=torch.from_numpy(ret.reshape(-1).astype(np.float32)),
                         value=torch.from_numpy(values.reshape(-1).astype(np.float32)))
    return ppo, batch


def test_ppo_skips_minibatches_with_nan_rewards_and_keeps_every_state() -> None:
    ppo, good = _ppo_rollout(0, nan_reward=False)
    ppo.update(good, np.random.default_rng(0))  # real Adam moments
    assert ppo.updates == 16 and ppo.skipped_updates == 0
    _, bad = _ppo_rollout(0, nan_reward=True)
    before = _snapshot(ppo)
    ppo.update(bad, np.random.default_rng(1))
    assert ppo.updates == 16
    assert ppo.skipped_updates == 16  # 2 epochs x 8 minibatches, every one NaN
    _assert_same(before, _snapshot(ppo))


def test_ppo_skips_a_nan_gradient_and_steps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ppo, good = _ppo_rollout(3, nan_reward=False)
    ppo.update(good, np.random.default_rng(0))
    before = _snapshot(ppo)
    _poison_gradients(ppo._critic_net, monkeypatch)
    ppo.update(good, np.random.default_rng(0))
    assert ppo.skipped_updates == 16 and ppo.updates == 16
    _assert_same(before, _snapshot(ppo))
