"""The learner node's ROS-free half: experience from many sources in, gradient updates out.

The learner node (drl_ros.nodes.learner) converts messages and publishes; everything that decides
what the replay buffer holds, when updates are owed and what a checkpoint restores lives here, so
it is tested without ROS and behaves the same in every run mode.

Streams: each source (an experience collector, by name) sends batches of consecutive transitions.
A batch continues the replay buffer's open episode only when it provably continues the previous
batch of the same stream: same source, same collector session (a restarted collector draws a new
one), same bridge session, and its first sequence right after the last one seen. Anything else —
a restart, a lost batch, a batch from another source in between — closes the open episode first,
so no transition's successor ever comes from another process or another part of the stream.

Checkpoints (``run_dir/checkpoints/learner``) hold the algorithm (modules, optimizers, counters,
policy version with its normalizer), the replay buffer with its sampling RNG, torch's RNG and the
learner's counters and per-source streams: ingesting the same experience after a resume gives the
same parameters as without the interruption (CPU, fixed seed).
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drl_ros.core.algorithms import OffPolicyAlgorithm, make_algorithm
from drl_ros.core.buffers import ReplayBuffer
from drl_ros.core.checkpoint import clean_orphans, load_checkpoint, save_checkpoint
from drl_ros.core.config import TrainConfig
from drl_ros.core.config_loading import config_to_dict
from drl_ros.core.spaces import BoxSpec, DiscreteSpec, SpaceSpec, space_spec
from drl_ros.runtime.env_factory import make_env

CHECKPOINT_KIND = "drl_ros.ros_learner_state"
CHECKPOINT_NAME = "learner"
PUBLISHED_NAME = "published_version.json"
"""High-water mark of the versions ever published from this run directory (see :meth:`publish`)."""


@dataclass
class SourceStream:
    """What the learner knows about one experience source's stream."""

    session: int = 0
    bridge_session: int = 0
    next_sequence: int = -1
    """Sequence the next batch of this stream must start at to continue it (-1: none yet)."""
    transitions: int = 0
    episode_return: float = 0.0
    """Return of the episode in progress on this stream (reset whenever the stream breaks)."""


@dataclass
class IngestResult:
    accepted: int = 0
    dropped_non_finite: int = 0
    continued: bool = False
    """The batch continued its stream's open episode."""
    error: str = ""
    """Why the whole batch was dropped (empty when it was not)."""


@dataclass
class ExperienceLearner:
    """An off-policy algorithm and its replay buffer fed by batches of transitions from sources."""

    config: TrainConfig
    algorithm: OffPolicyAlgorithm = field(init=False)
    replay: ReplayBuffer = field(init=False)

    def __post_init__(self) -> None:
        tc = self.config
        torch.set_num_threads(tc.torch_threads)
        torch.manual_seed(tc.seed)
        # The env is built once for its spaces only: the policy must scale actions as the env expects.
        env = make_env(tc.env)
        try:
            obs_spec: SpaceSpec = space_spec(env.observation_space)
            action_spec: SpaceSpec = space_spec(env.action_space)
        finally:
            env.close()
        if not isinstance(obs_spec, BoxSpec):
            raise ValueError(f"{tc.env.id}: the learner needs a flat Box observation space")
        algorithm = make_algorithm(tc.algorithm, obs_spec, action_spec, tc.algorithm_config())
        if not isinstance(algorithm, OffPolicyAlgorithm):
            # On-policy learning over topics needs whole rollouts of one policy version; not here yet.
            raise ValueError(f"the ROS learner runs off-policy algorithms; {tc.algorithm!r} is on-policy")
        self.algorithm = algorithm
        self.policy = algorithm.policy
        algo = algorithm.config
        discrete = isinstance(action_spec, DiscreteSpec)
        self.replay = ReplayBuffer(max(algo.buffer_size, 2), obs_spec.dim, () if discrete else (action_spec.dim,),
                                   1, discrete, seed=tc.seed)
        self.obs_dim = obs_spec.dim
        self.act_dim = action_spec.dim
        self.received = 0
        self.updates = 0
        self.episodes = 0
        self.stream_resets = 0
        self.published_version = 0
        """Highest version published from this run directory (survives restarts through a file)."""
        self.streams: dict[str, SourceStream] = {}
        self._last_source = ""
        self.returns: deque[float] = deque(maxlen=20)
        self.successes: deque[float] = deque(maxlen=20)
        self.metrics: dict[str, float] = {}

    # -- experience ---------------------------------------------------------------------------
    def ingest(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
               terminated: np.ndarray, truncated: np.ndarray, is_success: np.ndarray, *, source: str,
               session: int = 0, bridge_session: int = 0, first_sequence: int = 0,
               contiguous: bool = False) -> IngestResult:
        """Add one batch of consecutive transitions of ``source``'s stream.

        Shapes: ``obs`` / ``next_obs`` (N, obs_dim), ``action`` (N, act_dim) in env units,
        the rest (N,). ``next_obs`` is the true next observation (the final one at an episode end).
        """
        result = IngestResult()
        n = int(np.shape(reward)[0])
        if n == 0:
            return result
        if obs.shape[1] != self.obs_dim or action.shape[1] != self.act_dim:
            result.error = (f"dimensions {obs.shape[1]}/{action.shape[1]}, expected "
                            f"{self.obs_dim}/{self.act_dim}")
            return result
        stream = self.streams.get(source)
        continues = (stream is not None and contiguous and source == self._last_source
                     and stream.session == session and stream.bridge_session == bridge_session
                     and stream.next_sequence == first_sequence)
        finite = (np.isfinite(obs).all(1) & np.isfinite(next_obs).all(1) & np.isfinite(action).all(1)
                  & np.isfinite(reward))
        if not finite.all():
            result.dropped_non_finite = int((~finite).sum())
            if not finite[0]:
                continues = False  # the first kept row does not follow the stream's last one
        if stream is None:
            stream = self.streams[source] = SourceStream()
        if not continues:
            self.replay.open[:] = False
            stream.episode_return = 0.0  # an episode cut by the break is not a whole episode
            self.stream_resets += 1
        stream.session, stream.bridge_session = session, bridge_session
        stream.next_sequence = first_sequence + n
        self._last_source = source

        action_stored = action if self.policy.discrete else self.policy.unscale_action(action)
        rows = np.flatnonzero(finite)
        previous = -1
        for i in rows:
            if previous >= 0 and i != previous + 1:
                self.replay.open[:] = False  # a dropped row lies in between: the chain is broken
            previous = int(i)
            self.replay.add(obs[i:i + 1], action_stored[i:i + 1], reward[i:i + 1], next_obs[i:i + 1],
                            terminated[i:i + 1], truncated[i:i + 1])
        if self.policy.normalizer is not None and rows.size:
            self.policy.normalizer.update(obs[rows])
        self.received += int(rows.size)
        stream.transitions += int(rows.size)
        ret = stream.episode_return
        for i in rows:
            ret += float(reward[i])
            if terminated[i] or truncated[i]:
                self.returns.append(ret)
                self.successes.append(float(is_success[i]))
                self.episodes += 1
                ret = 0.0
        stream.episode_return = ret
        result.accepted = int(rows.size)
        result.continued = continues
        return result

    # -- updates ------------------------------------------------------------------------------
    def owed_updates(self) -> int:
        """Updates due for the experience received, on the embedded schedule (``gradient_steps``
        per ``train_freq`` transitions once ``learning_starts`` have arrived), not yet done."""
        cfg = self.algorithm.config
        if self.received < cfg.learning_starts:
            return 0
        per_round = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq
        due = ((self.received - cfg.learning_starts) // cfg.train_freq + 1) * per_round
        return max(0, due - self.updates)

    def update(self) -> dict[str, float]:
        self.metrics = self.algorithm.learn(self.replay)
        self.updates += 1
        return self.metrics

    def update_all(self) -> int:
        """Every owed update, now (tests and lock-step use; the node works them off in slices)."""
        done = 0
        while self.owed_updates() > 0:
            self.update()
            done += 1
        return done

    # -- publication --------------------------------------------------------------------------
    def next_version(self) -> int:
        """The version to publish the current weights under: one past every version this run
        directory has ever published, so a policy server that saw a version from before a crash
        still takes the resumed learner's weights as newer."""
        version = max(int(self.policy.version), self.published_version) + (1 if self.updates > 0 else 0)
        return version

    def mark_published(self, version: int, run_dir: str | os.PathLike[str] | None) -> None:
        """Record ``version`` as published (in ``run_dir`` too, atomically, before it goes out)."""
        self.policy.version = version
        self.published_version = max(self.published_version, version)
        if run_dir:
            path = Path(run_dir) / "checkpoints" / PUBLISHED_NAME
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "w") as f:
                json.dump({"version": self.published_version}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

    # -- statistics ---------------------------------------------------------------------------
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else math.nan

    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else math.nan

    def source_counts(self) -> dict[str, int]:
        return {name: stream.transitions for name, stream in sorted(self.streams.items())}

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, run_dir: str | os.PathLike[str]) -> Path:
        """Atomic checkpoint of everything learned and counted (see the module docstring)."""
        directory = Path(run_dir) / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        tensors, tree = self.algorithm.state()
        arrays, buffer_state = self.replay.state_dict()
        tensors.update({f"replay.{name}": torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        metadata = {
            "kind": CHECKPOINT_KIND,
            "config": config_to_dict(self.config),
            "algorithm": tree,
            "replay": buffer_state,
            "learner": {
                "received": self.received, "updates": self.updates, "episodes": self.episodes,
                "stream_resets": self.stream_resets, "published_version": self.published_version,
                "replay_size": len(self.replay), "last_source": self._last_source,
                "streams": {name: vars(stream) for name, stream in self.streams.items()},
                "returns": list(self.returns), "successes": list(self.successes),
            },
        }
        return save_checkpoint(directory / CHECKPOINT_NAME, tensors, metadata)

    def resume(self, run_dir: str | os.PathLike[str]) -> bool:
        """Restore the checkpoint in ``run_dir``; False when there is none. Orphans of a save
        that a crash interrupted are removed first."""
        directory = Path(run_dir) / "checkpoints"
        published = directory / PUBLISHED_NAME
        for stale in directory.glob(f".{PUBLISHED_NAME}.*.tmp"):
            stale.unlink(missing_ok=True)  # a write the crash interrupted; the old record stands
        if published.exists():
            self.published_version = int(json.loads(published.read_text())["version"])
        if not (directory / f"{CHECKPOINT_NAME}.json").exists():
            return False
        clean_orphans(directory)
        tensors, metadata = load_checkpoint(directory / CHECKPOINT_NAME)
        if metadata.get("kind") != CHECKPOINT_KIND:
            raise ValueError(f"{directory / CHECKPOINT_NAME}: not a learner checkpoint")
        self.algorithm.load_state(tensors, metadata["algorithm"])
        arrays = {name[len("replay."):]: t.numpy() for name, t in tensors.items() if name.startswith("replay.")}
        self.replay.load_state_dict(arrays, metadata["replay"])
        torch.set_rng_state(tensors["rng.torch"])
        state = metadata["learner"]
        self.received = int(state["received"])
        self.updates = int(state["updates"])
        self.episodes = int(state["episodes"])
        self.stream_resets = int(state["stream_resets"])
        self.published_version = max(self.published_version, int(state["published_version"]))
        self._last_source = str(state["last_source"])
        self.streams = {name: SourceStream(**fields) for name, fields in state["streams"].items()}
        self.returns.extend(state["returns"])
        self.successes.extend(state["successes"])
        return True

    @staticmethod
    def checkpoint_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
        """Counters of the checkpoint in ``run_dir`` (what a resume restores), without loading it."""
        record = json.loads((Path(run_dir) / "checkpoints" / f"{CHECKPOINT_NAME}.json").read_text())
        state = record["metadata"]["learner"]
        return {"updates": state["updates"], "received": state["received"], "replay_size": state["replay_size"],
                "policy_version": record["metadata"]["algorithm"]["policy_version"],
                "published_version": state["published_version"]}
