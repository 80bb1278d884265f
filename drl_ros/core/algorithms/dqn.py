"""Deep Q-Networks and the improvements that combine with it.

- DQN (Mnih et al. 2015, "Human-level control through deep reinforcement learning"): a Q network
  trained towards ``r + γ max_a' Q'(s', a')`` from a replay buffer, with a target network ``Q'``
  that is a periodic copy of the online one, and ε-greedy exploration.
- Double DQN (van Hasselt et al. 2016): the online network chooses the next action and the target
  network evaluates it, removing max's overestimation bias.
- Dueling heads (Wang et al. 2016): ``Q = V + A − mean A`` (see :mod:`drl_ros.core.q_networks`).
- Prioritized replay (Schaul et al. 2016): see :mod:`drl_ros.core.prioritized_replay`.
- n-step returns (Sutton 1988; Hessel et al. 2018): the buffer sums ``n`` discounted rewards and
  hands back ``discount = γ^k`` (0 on termination), so every target here is written
  ``reward + discount · bootstrap`` and works for any ``n``.

:class:`QLearningAlgorithm` holds what DQN shares with its distributional relatives (C51, QR-DQN,
IQN in :mod:`drl_ros.core.algorithms.distributional`): ε-greedy collection, target updates,
prioritized sampling and the optimizer step. Each subclass supplies its per-sample loss.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from drl_ros.core.algorithms.base import OffPolicyAlgorithm, fused_adam, polyak_update
from drl_ros.core.buffers import ReplayBatch, ReplayBuffer
from drl_ros.core.policy import Policy, PolicyStep
from drl_ros.core.prioritized_replay import PrioritizedSampler, linear_schedule
from drl_ros.core.q_networks import QValueActor
from drl_ros.core.spaces import BoxSpec, DiscreteSpec


@dataclass
class DQNConfig:
    """Hyperparameters of DQN and its options. Defaults follow Stable-Baselines3's DQN where it
    has the field; the options (double, dueling, prioritized, n_step) default to off."""

    learning_rate: float = 1e-4
    """Adam step size."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions."""
    learning_starts: int = 100
    """Env steps taken with uniform random actions before learning starts."""
    batch_size: int = 32
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    train_freq: int = 4
    """Vector-env steps between rounds of gradient steps."""
    gradient_steps: int = 1
    """Gradient steps per round; -1 means one per env step collected in the round."""
    n_step: int = 1
    """Rewards summed per target (1 is plain one-step Q-learning)."""
    target_update_interval: int = 10_000
    """Gradient steps between target-network updates. Stable-Baselines3 counts env steps instead;
    with its ``train_freq`` / ``gradient_steps`` rounds, an interval shorter than one round means
    one update per round, i.e. ``target_update_interval = gradient_steps`` here."""
    tau: float = 1.0
    """Target update ``Q' ← (1 − τ) Q' + τ Q``; 1 is DQN's hard copy."""
    exploration_initial_eps: float = 1.0
    """ε of ε-greedy at the first env step."""
    exploration_final_eps: float = 0.05
    """ε after ``exploration_steps`` env steps."""
    exploration_steps: int = 100_000
    """Env steps over which ε falls linearly (Stable-Baselines3's ``exploration_fraction`` times its
    total budget; the learner does not know a budget, as it may learn from a stream)."""
    max_grad_norm: float | None = 10.0
    """Clip the gradient's global norm to this; None disables clipping."""
    huber_kappa: float = 1.0
    """Threshold of the Huber TD loss (quadratic below, linear above); the quantile losses of
    QR-DQN and IQN use it as their κ too."""
    double: bool = False
    """Double DQN: the online network picks the next action, the target network values it."""
    dueling: bool = False
    """Dueling head ``V(s) + A(s, a) − mean_a A(s, a)``."""
    prioritized: bool = False
    """Prioritized experience replay (proportional variant) with importance-sampling weights."""
    priority_alpha: float = 0.6
    """How strongly priorities skew sampling: ``P(i) ∝ p_i^α`` (0 is uniform)."""
    priority_beta: float = 0.4
    """Initial importance-sampling exponent β; it rises linearly to 1."""
    priority_beta_updates: int = 100_000
    """Gradient steps over which β reaches 1."""
    priority_epsilon: float = 1e-6
    """Added to ``|δ|`` so no transition gets priority 0."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Widths of the Q network's hidden layers."""
    activation: str = "relu"
    """Hidden activation."""
    normalize_observations: bool = False
    """Normalize observations with running statistics kept in the policy."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if min(self.batch_size, self.n_step, self.train_freq, self.target_update_interval) < 1:
            raise ValueError("batch_size, n_step, train_freq and target_update_interval must be positive")
        if self.gradient_steps == 0 or self.gradient_steps < -1:
            raise ValueError("gradient_steps must be positive or -1")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.exploration_steps < 0 or self.priority_beta_updates < 0:
            raise ValueError("exploration_steps and priority_beta_updates must be >= 0")
        if self.priority_alpha < 0.0 or not 0.0 <= self.priority_beta <= 1.0 or self.priority_epsilon <= 0.0:
            raise ValueError("need priority_alpha >= 0, priority_beta in [0, 1] and priority_epsilon > 0")
        if self.huber_kappa <= 0.0:
            raise ValueError(f"huber_kappa must be positive, got {self.huber_kappa}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0.0:
            raise ValueError("max_grad_norm must be positive or None")
        if not self.hidden_sizes:
            raise ValueError("hidden_sizes needs at least one layer")


def compute_dqn_target(reward: torch.Tensor, discount: torch.Tensor, next_q_target: torch.Tensor,
                       next_q_online: torch.Tensor | None = None) -> torch.Tensor:
    """TD target ``y = r + discount · Q'(s', a*)`` of shape ``(B,)``.

    ``next_q_target`` / ``next_q_online`` are ``(B, A)``. DQN takes ``a* = argmax_a Q'(s', a)``;
    Double DQN (``next_q_online`` given) takes ``a* = argmax_a Q(s', a)`` from the online network.
    ``discount`` is ``γ^k`` for the ``k`` rewards summed in ``reward``, 0 where the episode terminated.
    """
    if next_q_online is None:
        bootstrap = next_q_target.max(dim=1).values
    else:
        bootstrap = next_q_target.gather(1, next_q_online.argmax(dim=1, keepdim=True)).squeeze(1)
    return reward + discount * bootstrap


def compute_dqn_loss(q: torch.Tensor, target: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """Per-sample Huber TD loss ``(B,)`` between ``Q(s, a)`` ``(B,)`` and the target ``(B,)``
    (Mnih et al. 2015 clip the TD error's gradient to [−1, 1], which is this loss with κ = 1)."""
    return F.huber_loss(q, target, reduction="none", delta=kappa)


class QLearningAlgorithm(OffPolicyAlgorithm):
    """What the DQN family shares: a :class:`QValueActor` policy, its target copy, ε-greedy
    collection, optional prioritized replay and the gradient step. Subclasses implement
    :meth:`compute_sample_losses`."""

    config: DQNConfig

    def __init__(self, observation_spec: BoxSpec, action_spec: DiscreteSpec, config: DQNConfig,
                 actor_kwargs: dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(action_spec, DiscreteSpec):
            raise ValueError(f"{self.name} needs a discrete action space")  # noqa: TRY004 (as make_algorithm)
        self.config = config
        self.n_actions = action_spec.n
        self.policy = Policy.create(observation_spec, action_spec, QValueActor.kind, config.hidden_sizes,
                                    config.activation, config.normalize_observations,
                                    actor_kwargs={"dueling": config.dueling, **actor_kwargs})
        self.q_net: QValueActor = self.policy.actor  # type: ignore[assignment]
        self.q_target: QValueActor = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = fused_adam(self.q_net.parameters(), config.learning_rate)
        self._params: list[torch.Tensor] = list(self.q_net.parameters())
        self._target_params: list[torch.Tensor] = list(self.q_target.parameters())
        self.sampler = PrioritizedSampler(config.priority_alpha, config.priority_epsilon) if config.prioritized \
            else None

    def modules(self) -> dict[str, nn.Module]:
        return {"policy": self.policy, "q_target": self.q_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": self.optimizer}

    def extra_state(self) -> dict[str, Any]:
        state = super().extra_state()
        if self.sampler is not None:
            state["prioritized_replay"] = self.sampler.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if self.sampler is not None and "prioritized_replay" in state:
            self.sampler.load_state_dict(state["prioritized_replay"])

    # -- acting -------------------------------------------------------------------------------
    def exploration_rate(self, steps: int) -> float:
        """ε after ``steps`` env steps."""
        cfg = self.config
        return linear_schedule(cfg.exploration_initial_eps, cfg.exploration_final_eps, cfg.exploration_steps, steps)

    def collect_action(self, obs: np.ndarray, steps: int) -> PolicyStep:
        """ε-greedy: a uniform random action with probability ε, else the greedy one."""
        eps = self.exploration_rate(steps)
        obs = np.asarray(obs, dtype=np.float32).reshape(-1, self.policy.observation_spec.dim)
        batch = obs.shape[0]
        # torch's generator: the trainer checkpoints it, so a resumed run explores the same way.
        explore = (torch.rand(batch) < eps).numpy()
        random_action = torch.randint(self.n_actions, (batch,)).numpy()
        if explore.all():
            # Early on nearly every action is random: skip the network.
            action = random_action
            greedy = None
        else:
            greedy = self.policy.act(obs).action
            action = np.where(explore, random_action, greedy)
        # Behaviour probability of the action taken: ε/A, plus 1 − ε if it is the greedy one.
        prob = np.full(batch, eps / self.n_actions)
        if greedy is not None:
            prob = np.where(action == greedy, prob + 1.0 - eps, prob)
        else:
            prob = prob + (1.0 - eps) / self.n_actions  # greedy unknown: its average share
        return PolicyStep(self.policy.scale_action(action), action, np.log(prob).astype(np.float32))

    # -- learning -----------------------------------------------------------------------------
    @property
    def priority_beta(self) -> float:
        """Importance-sampling exponent β after the updates so far."""
        cfg = self.config
        return linear_schedule(cfg.priority_beta, 1.0, cfg.priority_beta_updates, self.updates)

    def learn(self, replay: ReplayBuffer) -> dict[str, float]:
        cfg = self.config
        if self.sampler is None:
            return self.update(replay.sample(cfg.batch_size, cfg.gamma, cfg.n_step))
        beta = self.priority_beta
        batch, weights = self.sampler.sample(replay, cfg.batch_size, cfg.gamma, cfg.n_step, beta)
        metrics, priorities = self.train_step(batch, weights)
        if priorities is not None:
            self.sampler.update_priorities(batch.indices, priorities.numpy())
        metrics["priority_beta"] = beta
        return metrics

    def update(self, batch: ReplayBatch) -> dict[str, float]:
        return self.train_step(batch, None)[0]

    @abstractmethod
    def compute_sample_losses(self, batch: ReplayBatch, obs: torch.Tensor,
                              next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Per-sample losses ``(B,)`` (with grad), per-sample priority signals ``(B,)`` (no grad:
        ``|δ|`` for DQN, the distributional loss for the others) and extra metrics, from the batch
        and its normalized observations."""

    def train_step(self, batch: ReplayBatch,
                   weights: torch.Tensor | None) -> tuple[dict[str, float], torch.Tensor | None]:
        """One gradient step, weighting each sample's loss by ``weights`` ``(B,)`` if given.
        Returns the metrics and the new priorities ``(B,)`` (None when the step was skipped)."""
        cfg = self.config
        obs = self.policy.normalize(batch.obs)
        next_obs = self.policy.normalize(batch.next_obs)
        losses, priorities, metrics = self.compute_sample_losses(batch, obs, next_obs)
        loss = losses.mean() if weights is None else (weights * losses).mean()
        if not math.isfinite(loss.item()):
            self.skipped_updates += 1
            return {"skipped": 1.0}, None
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm is not None else math.inf
        grad_norm = nn.utils.clip_grad_norm_(self._params, max_norm)
        if not math.isfinite(grad_norm.item()):
            self.skipped_updates += 1
            return {"skipped": 1.0}, None
        self.optimizer.step()
        self.updates += 1
        if self.updates % cfg.target_update_interval == 0:
            polyak_update(self._params, self._target_params, cfg.tau)
        metrics["loss"] = loss.item()
        return metrics, priorities


class DQN(QLearningAlgorithm):
    """DQN with target network; ``double``, ``dueling``, ``prioritized`` and ``n_step`` combine."""

    name: ClassVar[str] = "dqn"

    def __init__(self, observation_spec: BoxSpec, action_spec: DiscreteSpec, config: DQNConfig) -> None:
        super().__init__(observation_spec, action_spec, config, {"distribution": "expected"})

    def compute_sample_losses(self, batch: ReplayBatch, obs: torch.Tensor,
                              next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            next_q_target = self.q_target.q_values(next_obs)
            next_q_online = self.q_net.q_values(next_obs) if self.config.double else None
            target = compute_dqn_target(batch.reward, batch.discount, next_q_target, next_q_online)
        q = self.q_net.q_values(obs).gather(1, batch.action.long().view(-1, 1)).squeeze(1)
        losses = compute_dqn_loss(q, target, self.config.huber_kappa)
        return losses, (q.detach() - target).abs(), {"q": q.mean().item()}
