"""REINFORCE, A2C and TRPO pieces on fixed inputs: returns, losses, conjugate gradient, Fisher-vector
products and the line search."""

import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from drl_ros.core.actors import CategoricalActor, GaussianActor
from drl_ros.core.algorithms.a2c import compute_a2c_policy_loss, compute_a2c_value_loss
from drl_ros.core.algorithms.reinforce import (
    Reinforce,
    ReinforceConfig,
    compute_reinforce_loss,
    compute_reinforce_returns,
)
from drl_ros.core.algorithms.trpo import (
    TRPO,
    TRPOConfig,
    action_distribution,
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    mean_kl,
)
from drl_ros.core.buffers import RolloutBatch, compute_gae
from drl_ros.core.spaces import BoxSpec, DiscreteSpec


def test_reinforce_returns_are_the_discounted_reward_to_go_of_each_episode():
    # One env, 6 steps: an episode that terminates at t=2, then one cut by the end of the rollout.
    rewards = np.array([[1.0], [2.0], [3.0], [1.0], [1.0], [1.0]], dtype=np.float32)
    terminated = np.array([[False], [False], [True], [False], [False], [False]])
    truncated = np.zeros_like(terminated)
    bootstrap = np.full((6, 1), 10.0, dtype=np.float32)  # V(next state); ignored where terminated
    g = 0.5
    returns = compute_reinforce_returns(rewards, terminated, truncated, bootstrap, g)
    expected = [1 + g * 2 + g**2 * 3, 2 + g * 3, 3,  # no bootstrap past a termination
                1 + g * 1 + g**2 * 1 + g**3 * 10, 1 + g * 1 + g**2 * 10, 1 + g * 10]  # cut: V completes it
    np.testing.assert_allclose(returns[:, 0], expected, rtol=1e-6)


def test_reinforce_returns_bootstrap_a_truncated_episode_from_its_final_observation():
    rewards = np.ones((3, 2), dtype=np.float32)
    terminated = np.zeros((3, 2), dtype=bool)
    truncated = np.array([[False, True], [False, False], [False, False]])
    bootstrap = np.array([[0.0, 4.0], [0.0, 0.0], [2.0, 8.0]], dtype=np.float32)
    returns = compute_reinforce_returns(rewards, terminated, truncated, bootstrap, 0.9)
    assert returns[0, 1] == pytest.approx(1 + 0.9 * 4.0)  # truncated: V(final obs) stands in
    assert returns[2, 1] == pytest.approx(1 + 0.9 * 8.0)  # next episode, cut by the rollout end
    assert returns[1, 1] == pytest.approx(1 + 0.9 * (1 + 0.9 * 8.0))
    assert returns[0, 0] == pytest.approx(1 + 0.9 + 0.81 * (1 + 0.9 * 2.0))


def test_the_rollout_loop_gives_reinforce_exactly_these_returns():
    """The trainer computes on-policy targets with GAE(λ); REINFORCE pins λ = 1, where the λ-return is
    the reward-to-go above."""
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(16, 3)).astype(np.float32)
    terminated = rng.random((16, 3)) < 0.1
    truncated = (rng.random((16, 3)) < 0.1) & ~terminated
    values = rng.normal(size=(16, 3)).astype(np.float32)
    next_values = rng.normal(size=(16, 3)).astype(np.float32)
    next_values[:-1] = np.where(terminated[:-1] | truncated[:-1], next_values[:-1], values[1:])
    _, returns = compute_gae(rewards, values, next_values, terminated, truncated, 0.97, ReinforceConfig.gae_lambda)
    np.testing.assert_allclose(returns, compute_reinforce_returns(rewards, terminated, truncated, next_values, 0.97),
                               rtol=1e-5, atol=1e-5)


def test_score_function_losses_on_fixed_tensors():
    log_prob = torch.tensor([-1.0, -2.0], requires_grad=True)
    advantage = torch.tensor([2.0, -1.0], requires_grad=True)
    loss = compute_reinforce_loss(log_prob, advantage)
    assert loss.item() == pytest.approx(-(-2.0 + 2.0) / 2)
    loss.backward()
    torch.testing.assert_close(log_prob.grad, torch.tensor([-1.0, 0.5]))
    assert advantage.grad is None  # the advantage is a constant weight, never a path for gradients
    assert compute_a2c_policy_loss(log_prob.detach(), advantage.detach()).item() == pytest.approx(loss.item())
    assert compute_a2c_value_loss(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.0])).item() == pytest.approx(2.5)


def test_conjugate_gradient_matches_numpy_solve_on_a_random_spd_system():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(12, 12))
    a = m @ m.T + 12 * np.eye(12)
    b = rng.normal(size=12)
    a_t = torch.tensor(a)
    x = conjugate_gradient(lambda v: a_t @ v, torch.tensor(b), max_steps=12, residual_tol=1e-28)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-8, atol=1e-12)
    # Fewer iterations than dimensions still reduce the residual (the solver is truncated in TRPO).
    x5 = conjugate_gradient(lambda v: a_t @ v, torch.tensor(b), max_steps=5).numpy()
    assert np.linalg.norm(a @ x5 - b) < 0.5 * np.linalg.norm(b)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fisher_vector_product_is_the_kl_hessian_times_the_vector(kind):
    torch.manual_seed(0)
    actor = (CategoricalActor(3, 4, [5], "tanh") if kind == "categorical"
             else GaussianActor(3, 2, [5], "tanh", log_std_init=-0.3))
    # A non-trivial policy (the default output layer is nearly zero).
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    obs = torch.randn(32, 3)
    params = list(actor.parameters())
    theta = parameters_to_vector(params).detach().clone()
    with torch.no_grad():
        old = action_distribution(actor, obs)

    hessian = torch.autograd.functional.hessian(lambda flat: _kl_at(actor, old, obs, flat), theta)
    vector_to_parameters(theta, params)
    kl = mean_kl(old, action_distribution(actor, obs))
    assert kl.item() == pytest.approx(0.0, abs=1e-6)
    v = torch.randn_like(theta)
    fvp = fisher_vector_product(kl, params, damping=0.0)(v)
    torch.testing.assert_close(fvp, hessian @ v, rtol=1e-4, atol=1e-6)
    # The Fisher matrix is positive semi-definite, and damping adds exactly damping·v.
    assert v.dot(fvp).item() >= -1e-6
    torch.testing.assert_close(fisher_vector_product(kl, params, damping=0.1)(v), fvp + 0.1 * v)


def _kl_at(actor, old, obs, flat):
    """Mean KL as a pure function of the flat parameter vector (for autograd's Hessian)."""
    chunks, start = {}, 0
    for name, shape in ((name, p.shape) for name, p in actor.named_parameters()):
        n = int(np.prod(shape))
        chunks[name] = flat[start:start + n].reshape(shape)
        start += n
    if isinstance(actor, CategoricalActor):
        logits = torch.func.functional_call(actor.logits_net, {k[len("logits_net."):]: v for k, v in chunks.items()},
                                            (obs,))
        new = torch.distributions.Categorical(logits=logits)
    else:
        mean = torch.func.functional_call(actor.mean_net, {k[len("mean_net."):]: v for k, v in chunks.items()
                                                           if k.startswith("mean_net.")}, (obs,))
        new = torch.distributions.Normal(mean, chunks["log_std"].exp().expand_as(mean))
    return mean_kl(old, new)


def test_line_search_accepts_the_first_step_that_improves_within_the_kl_bound():
    tried = []

    def evaluate(fraction):
        tried.append(fraction)
        # KL shrinks with the step; the objective improves for every step.
        return 1.0 + fraction, 0.05 * fraction**2

    fraction = backtracking_line_search(evaluate, base_objective=1.0, max_kl=0.01, shrinking_factor=0.5,
                                        max_iter=10)
    # KL at 1, 0.5, 0.25: 0.05, 0.0125, 0.003125 → the third candidate is the first inside δ.
    assert tried == [1.0, 0.5, 0.25] and fraction == 0.25


def test_line_search_rejects_steps_that_do_not_improve_the_surrogate():
    fraction = backtracking_line_search(lambda f: (1.0 - f, 0.0), base_objective=1.0, max_kl=0.01,
                                        shrinking_factor=0.5, max_iter=6)
    assert fraction is None
    # Improvement only for small steps: accepted once the step is small enough.
    fraction = backtracking_line_search(lambda f: (1.0 + (0.3 - f), 0.0), base_objective=1.0, max_kl=0.01,
                                        shrinking_factor=0.5, max_iter=6)
    assert fraction == 0.25


def _rollout(obs_dim=4, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, obs_dim, generator=g)
    action = (obs[:, 0] > 0).long()  # the better action depends on the observation
    advantage = torch.where(action == (obs[:, 1] > 0).long(), 1.0, -1.0)
    return RolloutBatch(obs=obs, action=action, log_prob=torch.full((n,), float(np.log(0.5))),
                        advantage=advantage, returns=advantage.clone(), value=torch.zeros(n))


def test_trpo_step_stays_inside_the_trust_region_and_improves_the_surrogate():
    torch.manual_seed(0)
    algo = TRPO(BoxSpec((-5.0,) * 4, (5.0,) * 4), DiscreteSpec(2), TRPOConfig(n_steps=256, target_kl=0.01))
    rollout = _rollout()
    actor = algo.policy.actor
    with torch.no_grad():
        old = action_distribution(actor, rollout.obs)
        rollout.log_prob = old.log_prob(rollout.action)
    metrics = algo.update(rollout, np.random.default_rng(0))
    assert 0.0 < metrics["line_search_fraction"] <= 1.0
    with torch.no_grad():
        kl = mean_kl(old, action_distribution(actor, rollout.obs)).item()
        new_log_prob = actor.log_prob_entropy(rollout.obs, rollout.action)[0]
    assert 0.0 < kl <= 0.01 + 1e-6
    assert ((new_log_prob - rollout.log_prob).exp() * rollout.advantage).mean() > rollout.advantage.mean()


def test_reinforce_update_moves_the_policy_towards_the_better_action():
    torch.manual_seed(0)
    algo = Reinforce(BoxSpec((-5.0,) * 4, (5.0,) * 4), DiscreteSpec(2), ReinforceConfig(learning_rate=1e-2))
    rollout = _rollout()
    best = (rollout.obs[:, 1] > 0).long()  # the action with the positive advantage in every state

    def p_best() -> float:
        with torch.no_grad():
            return algo.policy.actor.distribution(rollout.obs).probs.gather(1, best[:, None]).mean().item()

    assert p_best() == pytest.approx(0.5, abs=0.05)
    for _ in range(10):
        algo.update(rollout)
    assert p_best() > 0.8
