"""The ROS learner's core (drl_ros.runtime.experience_learner), without ROS.

Exact resume: N batches + checkpoint + kill + resume + N batches gives bitwise the same networks,
optimizer moments, replay buffer and counters as 2N batches straight (CPU, fixed seed). Streams:
a batch continues the replay buffer's open episode only when it continues its source's stream
(same collector session, same bridge session, next sequence); restarts and gaps close it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from drl_ros.core.config import load_train_config
from drl_ros.runtime.experience_learner import ExperienceLearner

ROOT = Path(__file__).resolve().parent.parent
OBS_DIM, ACT_DIM = 23, 3  # KukaReach-v0


def _config():
    return load_train_config(ROOT / "config" / "kuka_reach.yaml", [
        "sac.learning_starts=64", "sac.batch_size=32", "sac.buffer_size=4000", "sac.hidden_sizes=[32, 32]",
        "seed=3"])


def _batches(count: int, size: int = 24, sources: int = 2, seed: int = 0) -> list[dict]:
    """Consecutive transitions of ``sources`` interleaved streams, 50-step episodes."""
    rng = np.random.default_rng(seed)
    out, sequence, step = [], [1] * sources, [0] * sources
    for b in range(count):
        s = b % sources
        obs = rng.uniform(-1, 1, (size + 1, OBS_DIM)).astype(np.float32)
        truncated = np.zeros(size, bool)
        for i in range(size):
            step[s] += 1
            if step[s] == 50:
                truncated[i], step[s] = True, 0
        out.append({"obs": obs[:-1], "action": rng.uniform(-1, 1, (size, ACT_DIM)).astype(np.float32),
                    "reward": rng.normal(size=size).astype(np.float32), "next_obs": obs[1:],
                    "terminated": np.zeros(size, bool), "truncated": truncated, "is_success": truncated.copy(),
                    "source": f"/robot{s}/experience_collector", "session": 100 + s, "bridge_session": 200 + s,
                    "first_sequence": sequence[s], "contiguous": sequence[s] > 1})
        sequence[s] += size
    return out


def _feed(learner: ExperienceLearner, batches: list[dict]) -> None:
    for batch in batches:
        arrays = {k: batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated",
                                        "is_success")}
        learner.ingest(**arrays, source=batch["source"], session=batch["session"],
                       bridge_session=batch["bridge_session"], first_sequence=batch["first_sequence"],
                       contiguous=batch["contiguous"])
        learner.update_all()


def _state(learner: ExperienceLearner) -> dict[str, torch.Tensor]:
    tensors, tree = learner.algorithm.state()
    out = dict(tensors)
    arrays, _ = learner.replay.state_dict()
    out.update({f"replay.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
    out["counters"] = torch.tensor([learner.received, learner.updates, learner.episodes, learner.stream_resets,
                                    tree["policy_version"], learner.algorithm.updates])
    out["sampling"] = torch.from_numpy(learner.replay.rng.random(4))
    out["torch_rng"] = torch.get_rng_state()
    return out


def test_n_updates_kill_resume_n_equals_2n_straight(tmp_path):
    batches = _batches(16, size=16)
    straight = ExperienceLearner(_config())
    _feed(straight, batches[:8])
    straight.mark_published(straight.next_version(), tmp_path / "straight")
    _feed(straight, batches[8:])
    expected = _state(straight)
    assert straight.updates > 150  # enough updates that any divergence would show

    first = ExperienceLearner(_config())
    _feed(first, batches[:8])
    first.mark_published(first.next_version(), tmp_path)
    first.save(tmp_path)
    saved = ExperienceLearner.checkpoint_summary(tmp_path)
    del first  # the process dies here: nothing but the files survives

    resumed = ExperienceLearner(_config())
    assert resumed.resume(tmp_path)
    assert (resumed.updates, resumed.received, len(resumed.replay)) == (
        saved["updates"], saved["received"], saved["replay_size"])
    _feed(resumed, batches[8:])
    got = _state(resumed)
    assert got.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not different, f"differs after resume: {different[:10]}"
    assert resumed.source_counts() == straight.source_counts() == {
        "/robot0/experience_collector": 8 * 16, "/robot1/experience_collector": 8 * 16}


def test_published_versions_continue_past_a_crash(tmp_path):
    learner = ExperienceLearner(_config())
    _feed(learner, _batches(6))
    learner.save(tmp_path)  # checkpoint at version 0 ...
    for _ in range(3):  # ... then three publications the checkpoint does not know about
        learner.update()
        learner.mark_published(learner.next_version(), tmp_path)
    assert learner.policy.version == 3

    restarted = ExperienceLearner(_config())
    assert restarted.resume(tmp_path)
    assert restarted.policy.version == 0  # the checkpoint's weights ...
    assert restarted.next_version() == 4  # ... go out as a version no server has seen


def test_a_restarted_collector_or_bridge_never_continues_the_old_stream():
    learner = ExperienceLearner(_config())
    (batch,) = _batches(1, size=10, sources=1)
    arrays = {k: batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated",
                                    "is_success")}
    source = batch["source"]

    def ingest(**stream):
        return learner.ingest(**arrays, source=source, **{"session": 1, "bridge_session": 1, "first_sequence": 1,
                                                         "contiguous": True, **stream})

    assert not ingest(contiguous=False).continued  # the first batch of a stream
    assert learner.replay.open[0]
    assert ingest(first_sequence=11).continued
    # Claims to continue, but a new collector process (new session) sent it.
    assert not ingest(session=2, first_sequence=21).continued
    # Same collector, but the bridge behind it restarted.
    assert not ingest(session=2, bridge_session=2, first_sequence=31).continued
    # A batch went missing in between.
    assert not ingest(session=2, bridge_session=2, first_sequence=51).continued
    assert learner.stream_resets == 4
    assert learner.received == len(learner.replay) == 50
    # Every break left the previous segment closed: five segments of 10 transitions, each with
    # its own first observation, so no transition's successor comes from another segment.
    assert int((~learner.replay.has_action[:55, 0]).sum()) == 5


def test_non_finite_rows_are_dropped_and_break_the_chain():
    learner = ExperienceLearner(_config())
    (batch,) = _batches(1, size=6, sources=1)
    batch["reward"][2] = np.nan
    arrays = {k: batch[k] for k in ("obs", "action", "reward", "next_obs", "terminated", "truncated",
                                    "is_success")}
    result = learner.ingest(**arrays, source="s", session=1, bridge_session=1, first_sequence=1)
    assert (result.accepted, result.dropped_non_finite) == (5, 1)
    assert len(learner.replay) == 5
    # Rows 0-1 and 3-5 are separate segments: 2 + 1 and 3 + 1 slots.
    assert int(learner.replay.filled[0]) == 7
    assert np.array_equal(learner.replay.obs[3, 0], batch["obs"][3])


@pytest.mark.parametrize("dims", [(OBS_DIM + 1, ACT_DIM), (OBS_DIM, ACT_DIM - 1)])
def test_a_batch_of_the_wrong_dimensions_is_refused_whole(dims):
    learner = ExperienceLearner(_config())
    obs = np.zeros((4, dims[0]), np.float32)
    result = learner.ingest(obs, np.zeros((4, dims[1]), np.float32), np.zeros(4, np.float32), obs,
                            np.zeros(4, bool), np.zeros(4, bool), np.zeros(4, bool), source="s")
    assert result.error and result.accepted == 0 and len(learner.replay) == 0


_CHILD = """
import sys
sys.path.insert(0, {test_dir!r})
from test_experience_learner import _batches, _config, _feed
from drl_ros.runtime.experience_learner import ExperienceLearner
learner = ExperienceLearner(_config())
learner.resume({run_dir!r})
batches = _batches(8, size=16)
_feed(learner, batches[{start}:{stop}])
learner.save({run_dir!r})
"""


def _child(run_dir: Path, start: int, stop: int, crash_at: str | None = None) -> int:
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("DRL_ROS_CHECKPOINT_CRASH_AT", None)
    if crash_at:
        env["DRL_ROS_CHECKPOINT_CRASH_AT"] = crash_at
    code = _CHILD.format(test_dir=str(Path(__file__).parent), run_dir=str(run_dir), start=start, stop=stop)
    return subprocess.run([sys.executable, "-c", code], env=env, check=False, timeout=300).returncode


@pytest.mark.parametrize(("stage", "survivor"), [("tensor_tmp_written", "first"), ("json_tmp_written", "first"),
                                                 ("json_replaced", "second")])
def test_a_learner_killed_while_checkpointing_resumes_from_a_whole_checkpoint(tmp_path, stage, survivor):
    """SIGKILL inside the second save: the learner resumes from the first checkpoint or the
    second, never from a mix, and the killed save's leftovers are cleaned up."""
    assert _child(tmp_path, 0, 4) == 0
    first = ExperienceLearner.checkpoint_summary(tmp_path)
    assert _child(tmp_path, 4, 8, crash_at=stage) == -9
    learner = ExperienceLearner(_config())
    assert learner.resume(tmp_path)
    expected = first["received"] if survivor == "first" else first["received"] + 4 * 16
    assert learner.received == len(learner.replay) == expected
    assert learner.updates == learner.algorithm.updates
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if ".tmp" in p.name]
    assert not leftovers, leftovers
    tensor_files = list((tmp_path / "checkpoints").glob("learner.*.safetensors"))
    assert len(tensor_files) == 1, tensor_files
