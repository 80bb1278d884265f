"""Value-based algorithms on fixed data: the sum tree, prioritized replay, n-step DQN targets,
the C51 projection and the quantile losses, checked against hand-computed values."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drl_ros.core.algorithms import make_algorithm
from drl_ros.core.algorithms.distributional import (
    IQN,
    C51Config,
    IQNConfig,
    QRDQNConfig,
    compute_c51_loss,
    compute_categorical_projection,
    compute_quantile_huber_loss,
)
from drl_ros.core.algorithms.dqn import DQN, DQNConfig, compute_dqn_target
from drl_ros.core.buffers import ReplayBuffer
from drl_ros.core.policy import Policy
from drl_ros.core.prioritized_replay import PrioritizedSampler, SumTree
from drl_ros.core.q_networks import QValueActor, quantile_midpoints
from drl_ros.core.spaces import BoxSpec, DiscreteSpec

OBS = BoxSpec((-1.0, -1.0), (1.0, 1.0))
ACTIONS = DiscreteSpec(3)


# -- sum tree ------------------------------------------------------------------------------------
def test_sum_tree_total_and_prefix_sums_on_a_small_tree():
    tree = SumTree(5)  # 8 leaves, 3 unused
    tree.set(np.arange(5), np.array([1.0, 2.0, 0.0, 3.0, 4.0]))
    assert tree.total == 10.0
    draws = np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])
    np.testing.assert_array_equal(tree.find_prefix_sum(draws), [0, 0, 1, 1, 3, 3, 4, 4])
    # An update moves every ancestor's sum; the zero leaf is never found.
    tree.set(np.array([1]), np.array([5.0]))
    assert tree.total == 13.0
    np.testing.assert_array_equal(tree.find_prefix_sum(np.array([5.99, 6.0, 8.99, 9.0])), [1, 3, 3, 4])
    np.testing.assert_array_equal(tree.get(np.array([0, 1, 2, 3, 4])), [1.0, 5.0, 0.0, 3.0, 4.0])
    # A repeated index: the last value wins and the sums stay consistent.
    tree.set(np.array([0, 0]), np.array([7.0, 2.0]))
    assert tree.total == 14.0
    tree.rebuild()
    assert tree.total == 14.0


def test_sum_tree_of_one_leaf_and_bad_input():
    tree = SumTree(1)
    tree.set(np.array([0]), np.array([2.5]))
    assert tree.total == 2.5
    np.testing.assert_array_equal(tree.find_prefix_sum(np.array([0.0, 2.4])), [0, 0])
    with pytest.raises(IndexError):
        SumTree(4).set(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError):
        SumTree(4).set(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError):
        SumTree(4).set(np.array([0]), np.array([math.nan]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=70).filter(lambda p: sum(p) > 0), st.data())
def test_sum_tree_prefix_search_matches_a_cumulative_sum(priorities, data):
    tree = SumTree(len(priorities))
    tree.set(np.arange(len(priorities)), np.array(priorities, dtype=float))
    assert tree.total == sum(priorities)
    # Integer priorities and draws halfway between integers leave no rounding at the boundaries.
    draws = np.array(data.draw(st.lists(st.integers(0, sum(priorities) - 1), min_size=1, max_size=20))) + 0.5
    expected = np.searchsorted(np.cumsum(priorities), draws, side="right")
    np.testing.assert_array_equal(tree.find_prefix_sum(draws), expected)


def test_sum_tree_samples_in_proportion_to_priority():
    rng = np.random.default_rng(0)
    priorities = rng.uniform(0.0, 1.0, size=50) ** 3
    priorities[[3, 17]] = 0.0
    tree = SumTree(50)
    tree.set(np.arange(50), priorities)
    draws = 200_000
    counts = np.bincount(tree.find_prefix_sum(rng.uniform(0.0, tree.total, size=draws)), minlength=50)
    assert counts[3] == counts[17] == 0
    expected = draws * priorities / priorities.sum()
    # Pearson's chi-square over the 48 non-empty leaves; its 99.9 % quantile at 47 dof is about 82.
    chi2 = float(((counts - expected) ** 2 / np.where(expected > 0, expected, 1.0)).sum())
    assert chi2 < 82.0


def test_sum_tree_draws_on_the_total_land_on_the_last_positive_leaf():
    tree = SumTree(6)
    tree.set(np.arange(6), np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(tree.find_prefix_sum(np.array([tree.total, tree.total * (1 + 1e-15)])), [2, 2])


# -- prioritized replay ---------------------------------------------------------------------------
def _fill(replay: ReplayBuffer, steps: int, episode_length: int = 4, seed: int = 0, start: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = replay.num_envs
    for t in range(start, start + steps):
        obs = rng.normal(size=(n, 2)).astype(np.float32)
        ended = np.full(n, (t + 1) % episode_length == 0)
        replay.add(obs, rng.integers(0, 3, size=n), np.ones(n), obs + 1.0, ended, np.zeros(n, dtype=bool))


def test_new_transitions_get_the_max_priority_and_episode_ends_none():
    replay = ReplayBuffer(40, 2, (), num_envs=2, discrete=True, seed=0)
    sampler = PrioritizedSampler(alpha=1.0, epsilon=0.01)
    _fill(replay, 3)  # one open episode per env: slots 0..2 have actions, slot 3 awaits one
    sampler.sync(replay)
    assert sampler.tree is not None
    np.testing.assert_array_equal(sampler.tree.leaves > 0, replay.has_action.reshape(-1))
    sampler.update_priorities(np.array([0, 1]), np.array([4.0, -0.5]))
    assert sampler.max_priority == pytest.approx(4.01)
    _fill(replay, 2, seed=1, start=3)  # closes the episode (final observation at slot 4), starts the next
    sampler.sync(replay)
    leaves = sampler.tree.leaves.reshape(replay.slots, 2)
    np.testing.assert_allclose(leaves[0], [4.01, 0.51])  # learned priorities stay
    np.testing.assert_allclose(leaves[3], [4.01, 4.01])  # the action that arrived after the last sync
    np.testing.assert_array_equal(leaves[4], [0.0, 0.0])  # final observations start no transition
    np.testing.assert_allclose(leaves[5], [4.01, 4.01])
    np.testing.assert_array_equal(sampler.tree.leaves > 0, replay.has_action.reshape(-1))


def test_overwritten_slots_lose_their_priority_on_wrap_around():
    replay = ReplayBuffer(10, 2, (), num_envs=1, discrete=True, seed=0)
    sampler = PrioritizedSampler(alpha=1.0)
    for chunk in range(6):
        _fill(replay, 3, episode_length=5, seed=chunk)
        sampler.sync(replay)
        assert sampler.tree is not None
        np.testing.assert_array_equal(sampler.tree.leaves > 0, replay.has_action.reshape(-1))
        sampler.update_priorities(np.flatnonzero(replay.has_action.reshape(-1)), np.full(len(replay), 0.3))


def test_importance_weights_and_sampling_frequencies():
    replay = ReplayBuffer(8, 2, (), num_envs=1, discrete=True, seed=0)
    _fill(replay, 7, episode_length=100)  # slots 0..6 start transitions
    sampler = PrioritizedSampler(alpha=0.5, epsilon=1e-9)
    sampler.sync(replay)
    errors = np.array([1.0, 4.0, 9.0, 16.0, 1.0, 1.0, 4.0])
    sampler.update_priorities(np.arange(7), errors)
    priorities = np.sqrt(errors)  # p^α
    probs = priorities / priorities.sum()
    for beta in (0.0, 0.4, 1.0):
        weights = sampler.beta_weights(np.array([0, 2, 3]), beta)
        raw = (7 * probs[[0, 2, 3]]) ** -beta
        np.testing.assert_allclose(weights, raw / raw.max(), rtol=1e-6)
    assert weights.max() == 1.0 and weights[0] > weights[2]  # rare transitions weigh more
    counts = np.zeros(7)
    for _ in range(400):
        batch, weights = sampler.sample(replay, 16, gamma=0.9, n_step=1, beta=0.5)
        assert weights.shape == (16,) and weights.dtype == torch.float32
        counts += np.bincount(batch.indices, minlength=8)[:7]
    np.testing.assert_allclose(counts / counts.sum(), probs, atol=0.01)


def test_priority_beta_anneals_linearly_to_one():
    algo = DQN(OBS, ACTIONS, DQNConfig(prioritized=True, priority_beta=0.4, priority_beta_updates=100))
    assert algo.priority_beta == pytest.approx(0.4)
    algo.updates = 50
    assert algo.priority_beta == pytest.approx(0.7)
    algo.updates = 100
    assert algo.priority_beta == pytest.approx(1.0)
    algo.updates = 1000
    assert algo.priority_beta == pytest.approx(1.0)


def test_prioritized_learning_writes_td_errors_back_and_checkpoints_them():
    replay = ReplayBuffer(64, 2, (), num_envs=2, discrete=True, seed=0)
    _fill(replay, 20)
    algo = DQN(OBS, ACTIONS, DQNConfig(prioritized=True, batch_size=16, priority_alpha=1.0, priority_epsilon=1e-6,
                                       hidden_sizes=[8]))
    metrics = algo.learn(replay)
    assert {"loss", "q", "priority_beta"} <= metrics.keys()
    assert algo.sampler is not None and algo.sampler.tree is not None
    leaves = algo.sampler.tree.leaves.copy()
    assert np.count_nonzero((leaves > 0) & (leaves != 1.0)) > 0  # some priorities are TD errors now
    tensors, tree = algo.state()
    restored = DQN(OBS, ACTIONS, DQNConfig(prioritized=True, batch_size=16, hidden_sizes=[8]))
    restored.load_state(tensors, tree)
    restored.sampler.sync(replay)
    np.testing.assert_array_equal(restored.sampler.tree.leaves, leaves)
    assert restored.sampler.max_priority == algo.sampler.max_priority


# -- DQN targets -----------------------------------------------------------------------------------
def _constant_q(actor: QValueActor, values: list[float]) -> None:
    """Make a Q network output ``values`` for every observation."""
    with torch.no_grad():
        for p in actor.parameters():
            p.zero_()
        actor.net.head.advantage.bias.copy_(torch.tensor(values))


def test_dqn_and_double_dqn_targets_on_fixed_tensors():
    reward = torch.tensor([1.0, 0.5])
    discount = torch.tensor([0.9, 0.0])
    next_q_target = torch.tensor([[1.0, 3.0, 2.0], [5.0, 6.0, 7.0]])
    next_q_online = torch.tensor([[0.0, 0.0, 9.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(compute_dqn_target(reward, discount, next_q_target), torch.tensor([1.0 + 2.7, 0.5]))
    torch.testing.assert_close(compute_dqn_target(reward, discount, next_q_target, next_q_online),
                               torch.tensor([1.0 + 1.8, 0.5]))


@pytest.mark.parametrize("double", [False, True])
def test_n_step_targets_through_the_learning_path(double):
    """3-step targets as DQN.learn computes them: written back as priorities |Q − y| (α = 1)."""
    gamma = 0.9
    replay = ReplayBuffer(32, 2, (), num_envs=1, discrete=True, seed=0)
    rewards = [1.0, 2.0, 4.0, 8.0, 16.0]
    # One episode of 5 steps that terminates, then 2 steps of an episode cut by a time limit.
    for t, r in enumerate(rewards):
        replay.add(np.full((1, 2), t, np.float32), np.array([t % 3]), np.array([r]), np.full((1, 2), t + 1, np.float32),
                   np.array([t == 4]), np.array([False]))
    for t in range(2):
        replay.add(np.full((1, 2), 10 + t, np.float32), np.array([0]), np.array([32.0]),
                   np.full((1, 2), 11 + t, np.float32), np.array([False]), np.array([t == 1]))
    config = DQNConfig(n_step=3, gamma=gamma, double=double, prioritized=True, priority_alpha=1.0,
                       priority_epsilon=1e-9, batch_size=64, learning_rate=0.0, hidden_sizes=[4])
    algo = DQN(OBS, ACTIONS, config)
    _constant_q(algo.q_net, [0.0, 0.0, 0.0])
    # The target network's values: max 5 at action 1; the online net (all zeros) picks action 0 for double.
    _constant_q(algo.q_target, [3.0, 5.0, -1.0])
    algo.learn(replay)
    bootstrap = 3.0 if double else 5.0
    g = gamma
    expected_y = {
        0: 1 + g * 2 + g**2 * 4 + g**3 * bootstrap,
        1: 2 + g * 4 + g**2 * 8 + g**3 * bootstrap,
        2: 4 + g * 8 + g**2 * 16,  # terminates within 3 steps: no bootstrap
        3: 8 + g * 16,
        4: 16.0,
        6: 32 + g * 32 + g**2 * bootstrap,  # truncated: bootstrap from the final observation
        7: 32 + g * bootstrap,
    }
    leaves = algo.sampler.tree.leaves
    for slot, y in expected_y.items():
        assert leaves[slot] == pytest.approx(abs(0.0 - y), rel=1e-5), slot
    assert leaves[5] == 0.0 and leaves[8] == 0.0  # final observations


# -- C51 -------------------------------------------------------------------------------------------
ATOMS = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
NEXT_PROBS = torch.tensor([0.2, 0.3, 0.1, 0.25, 0.15])


@pytest.mark.parametrize(("reward", "discount", "expected"), [
    # r + z = 0.5, 1.5, 2.5, 3.5, 4.5 (clipped to 4): each splits half-half between neighbours.
    (0.5, 1.0, [0.1, 0.25, 0.2, 0.175, 0.275]),
    # −1 + 0.5 z = −1, −0.5 (both clipped to v_min = 0), 0, 0.5, 1.
    (-1.0, 0.5, [0.725, 0.275, 0.0, 0.0, 0.0]),
    # Terminal: every atom maps to r = 2.25, split 3:1 between atoms 2 and 3.
    (2.25, 0.0, [0.0, 0.0, 0.75, 0.25, 0.0]),
    # Terminal above v_max: all mass on the last atom.
    (7.0, 0.0, [0.0, 0.0, 0.0, 0.0, 1.0]),
])
def test_categorical_projection_matches_hand_computed_values(reward, discount, expected):
    projected = compute_categorical_projection(NEXT_PROBS.unsqueeze(0), torch.tensor([reward]), torch.tensor([discount]),
                                               ATOMS)
    torch.testing.assert_close(projected, torch.tensor([expected]))
    assert projected.sum().item() == pytest.approx(1.0)


def test_categorical_projection_is_batched_and_keeps_mass():
    probs = torch.softmax(torch.randn(6, 11), dim=1)
    atoms = torch.linspace(-5.0, 5.0, 11)
    reward = torch.tensor([-9.0, -1.3, 0.0, 0.7, 2.2, 9.0])
    discount = torch.tensor([0.99, 0.0, 0.9, 0.5, 0.99, 0.0])
    projected = compute_categorical_projection(probs, reward, discount, atoms)
    rows = [compute_categorical_projection(probs[i:i + 1], reward[i:i + 1], discount[i:i + 1], atoms) for i in range(6)]
    torch.testing.assert_close(projected, torch.cat(rows))
    torch.testing.assert_close(projected.sum(dim=1), torch.ones(6))
    # The projection keeps the mean wherever nothing is clipped (row 3: r + γz ∈ [-1.8, 3.2]).
    torch.testing.assert_close(projected[3] @ atoms, reward[3] + discount[3] * (probs[3] @ atoms))


def test_c51_loss_is_cross_entropy():
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    target = torch.tensor([[0.5, 0.5, 0.0]])
    log_p = torch.log_softmax(logits, dim=1)[0]
    expected = -(0.5 * log_p[0] + 0.5 * log_p[1])
    torch.testing.assert_close(compute_c51_loss(logits, target), expected.unsqueeze(0))


# -- quantile losses -------------------------------------------------------------------------------
def test_quantile_huber_loss_matches_hand_computed_values():
    quantiles = torch.tensor([[0.0, 2.0]], requires_grad=True)
    target = torch.tensor([[1.0, 4.0]])
    taus = torch.tensor([0.25, 0.75])
    # δ_ij = T θ_j − θ_i = [[1, 4], [−1, 2]]; Huber(κ=1) = [[0.5, 3.5], [0.5, 1.5]];
    # weights |τ_i − 1{δ<0}| = [[0.25, 0.25], [0.25, 0.75]]; mean over j, sum over i: 0.5 + 0.625.
    loss = compute_quantile_huber_loss(quantiles, target, taus, kappa=1.0)
    torch.testing.assert_close(loss, torch.tensor([1.125]))
    # κ = 2: Huber = [[0.5, 6], [0.5, 2]] / κ → 0.40625 + 0.40625.
    torch.testing.assert_close(compute_quantile_huber_loss(quantiles, target, taus, kappa=2.0), torch.tensor([0.8125]))
    # Both predictions sit below most target mass: the gradient pushes them up.
    loss.sum().backward()
    assert (quantiles.grad < 0).all()


def test_quantile_loss_is_minimized_at_the_true_quantiles():
    samples = torch.linspace(0.0, 1.0, 1001).unsqueeze(0)  # uniform on [0, 1]
    taus = quantile_midpoints(4)
    true = taus.unsqueeze(0)
    shifted = true + torch.tensor([[0.05, -0.05, 0.05, -0.05]])
    assert compute_quantile_huber_loss(true, samples, taus, kappa=1e-3) < \
        compute_quantile_huber_loss(shifted, samples, taus, kappa=1e-3)


def test_iqn_loss_uses_each_samples_own_fractions():
    torch.manual_seed(0)
    quantiles, target, taus = torch.randn(5, 8), torch.randn(5, 6), torch.rand(5, 8)
    loss = compute_quantile_huber_loss(quantiles, target, taus)
    assert loss.shape == (5,)
    for b in range(5):
        torch.testing.assert_close(loss[b:b + 1], compute_quantile_huber_loss(quantiles[b:b + 1], target[b:b + 1], taus[b]))


def test_iqn_network_shapes_and_deterministic_greedy_action():
    config = IQNConfig(n_taus=8, n_target_taus=6, n_policy_taus=4, n_cos=16, hidden_sizes=[16, 16], batch_size=5)
    algo = IQN(OBS, ACTIONS, config)
    obs = torch.randn(5, 2)
    assert algo.q_net(obs, torch.rand(5, 7)).shape == (5, 7, 3)
    assert algo.q_net(obs).shape == (5, 4, 3)  # the K policy fractions
    torch.testing.assert_close(algo.q_net.policy_taus, torch.tensor([0.125, 0.375, 0.625, 0.875]))
    # Acting does not sample fractions: the same observation gives the same action every time.
    step = algo.policy.act(obs.numpy(), deterministic=False)
    for _ in range(3):
        np.testing.assert_array_equal(algo.policy.act(obs.numpy()).action, step.action)
    replay = ReplayBuffer(32, 2, (), discrete=True, seed=0)
    _fill(replay, 10)
    batch = replay.sample(5, 0.99, 1)
    losses, priorities, _ = algo.compute_sample_losses(batch, batch.obs, batch.next_obs)
    assert losses.shape == priorities.shape == (5,) and losses.requires_grad and not priorities.requires_grad
    assert algo.update(batch)["loss"] > 0


# -- the algorithms and their policies ---------------------------------------------------------------
VARIANTS = [
    ("dqn", DQNConfig(hidden_sizes=[16])),
    ("dqn", DQNConfig(hidden_sizes=[16], double=True, dueling=True, prioritized=True, n_step=3)),
    ("c51", C51Config(hidden_sizes=[16], n_atoms=11, v_min=0.0, v_max=5.0, dueling=True)),
    ("qrdqn", QRDQNConfig(hidden_sizes=[16], n_quantiles=5, double=True)),
    ("iqn", IQNConfig(hidden_sizes=[16, 16], n_taus=4, n_target_taus=4, n_policy_taus=4, prioritized=True)),
]


@pytest.mark.parametrize(("name", "config"), VARIANTS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_variant_learns_a_step_and_its_policy_file_round_trips(tmp_path, name, config):
    torch.manual_seed(0)
    algo = make_algorithm(name, OBS, ACTIONS, config)
    replay = ReplayBuffer(64, 2, (), num_envs=2, discrete=True, seed=0)
    _fill(replay, 20)
    before = [p.detach().clone() for p in algo.q_net.parameters()]
    metrics = algo.learn(replay)
    assert math.isfinite(metrics["loss"]) and algo.updates == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.q_net.parameters()))
    obs = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float32)
    algo.policy.save(tmp_path / "policy")
    loaded = Policy.load(tmp_path / "policy")
    assert isinstance(loaded.actor, QValueActor) and loaded.actor.distribution == algo.q_net.distribution
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True).env_action,
                                  algo.policy.act(obs, deterministic=True).env_action)
    torch.testing.assert_close(loaded.actor.q_values(torch.from_numpy(obs)), algo.q_net.q_values(torch.from_numpy(obs)))


def test_target_network_is_a_periodic_copy():
    replay = ReplayBuffer(64, 2, (), discrete=True, seed=0)
    _fill(replay, 30)
    algo = DQN(OBS, ACTIONS, DQNConfig(hidden_sizes=[8], target_update_interval=3, learning_rate=1e-2))
    for update in range(1, 7):
        algo.learn(replay)
        same = all(torch.equal(a, b) for a, b in zip(algo.q_net.parameters(), algo.q_target.parameters()))
        assert same == (update % 3 == 0), update


def test_dueling_head_separates_value_and_mean_zero_advantage():
    actor = QValueActor(2, 4, [8], dueling=True)
    features = actor.net.trunk(torch.randn(5, 2))
    q = actor.net.head(features).squeeze(-1)
    value = actor.net.head.value(features)
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), value)


def test_epsilon_greedy_exploration_schedule_and_behaviour_log_prob():
    algo = DQN(OBS, ACTIONS, DQNConfig(hidden_sizes=[8], exploration_initial_eps=1.0, exploration_final_eps=0.1,
                                       exploration_steps=1000))
    assert algo.exploration_rate(0) == 1.0
    assert algo.exploration_rate(500) == pytest.approx(0.55)
    assert algo.exploration_rate(5000) == pytest.approx(0.1)
    obs = np.zeros((4000, 2), np.float32)
    greedy = algo.policy.act(obs[:1], deterministic=True).action[0]
    torch.manual_seed(0)
    early = algo.collect_action(obs, 0)
    assert np.bincount(early.action, minlength=3).min() > 1200  # uniform
    np.testing.assert_allclose(early.log_prob, math.log(1 / 3), rtol=1e-6)
    late = algo.collect_action(obs, 10_000)
    share = float(np.mean(late.action == greedy))
    assert share == pytest.approx(0.9 + 0.1 / 3, abs=0.02)
    np.testing.assert_allclose(late.log_prob[late.action == greedy], math.log(0.9 + 0.1 / 3), rtol=1e-6)
    np.testing.assert_allclose(late.log_prob[late.action != greedy], math.log(0.1 / 3), rtol=1e-6)
    assert late.env_action.dtype == np.int64


def test_value_based_algorithms_refuse_continuous_actions_and_bad_configs():
    with pytest.raises(ValueError, match="discrete"):
        make_algorithm("dqn", OBS, BoxSpec((-1.0,), (1.0,)), DQNConfig())
    with pytest.raises(ValueError):
        C51Config(v_min=1.0, v_max=1.0)
    with pytest.raises(ValueError):
        DQNConfig(exploration_final_eps=1.5)
    with pytest.raises(ValueError):
        DQNConfig(target_update_interval=0)
