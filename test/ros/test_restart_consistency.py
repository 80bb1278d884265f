"""A collector or bridge restart does not corrupt the learner's data.

One robot (gym_bridge, policy_server, experience_collector) trains a learner; mid-run the
collector is killed (SIGKILL) and started again under the same name, later the bridge too. A
recorder keeps every observation the bridge published, with its session and sequence. When the
run stops, the learner's checkpointed replay buffer is checked against that record: every stored
transition is two consecutive observations of one bridge session (none pairs an observation of
the old process with one of the new), the counts agree, and learning went on after the restarts.

The restarts must reach the learner: after each, the test waits until the learner holds more
transitions than every earlier stream sent (the recorder counts the batches on /experience), not
merely more transitions in all. Under load, a learner-wide count can be made up by the killed
process's batches still in flight, and a new process killed before any of its batches arrived
starts no new stream at the learner. The buffer then holds the three streams (collector session,
bridge session) and the learner must have counted a reset at the start of each.
"""

import os
import signal
import time

import numpy as np
from suite_proc import BackgroundClient

from drl_ros.core.checkpoint import load_checkpoint

NS = "/robot0"
SHARED = {"experience": "/experience", "policy_weights": "/policy_weights", "training_stats": "/training_stats"}


def _kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _new_stream_learned(sessions_key: str, count: int):
    """The ``count``-th collector or bridge session has begun, and the learner has taken 150 of its
    transitions at least (more than every earlier stream sent: those can be in flight still)."""
    return lambda p: (p.get(sessions_key, 0) >= count
                      and p["transitions"] >= p["sent_before_latest_stream"] + 150)


def test_collector_and_bridge_restarts_leave_only_whole_consistent_transitions(ros, tmp_path):
    run_dir = tmp_path / "run"
    recorder = BackgroundClient(ros, "record_streams", namespace=NS)
    ros.node("learner", {"config": "kuka_reach", "run_dir": str(run_dir), "publish_every_updates": 50,
                         "overrides": ["sac.learning_starts=100", "sac.hidden_sizes=[32, 32]", "sac.batch_size=64"]})
    # autostart off: the recorder activates each bridge once it has discovered its publisher.
    bridge = ros.node("gym_bridge", {"seed": 0, "publish_clock": False, "max_pending_updates": 50,
                                     "autostart": False}, namespace=NS, remap=SHARED)
    ros.node("policy_server", {"seed": 0}, namespace=NS, remap={**SHARED, "raw_action": "command"})
    collector = ros.node("experience_collector", {"batch_size": 16}, namespace=NS, remap=SHARED)
    try:
        recorder.wait_until("transitions", 200)  # one stream so far: all of it from the first collector
        _kill(collector)
        time.sleep(1.0)  # the bridge and the server run on without a collector meanwhile
        ros.node("experience_collector", {"batch_size": 16}, namespace=NS, remap=SHARED)
        second = recorder.wait_for("the restarted collector's stream", _new_stream_learned("collector_sessions", 2))
        _kill(bridge)
        time.sleep(1.0)
        bridge = ros.node("gym_bridge", {"seed": 5, "publish_clock": False, "max_pending_updates": 50,
                                         "autostart": False}, namespace=NS, remap=SHARED)
        recorder.wait_for("the restarted bridge's stream", _new_stream_learned("bridge_sessions", 2))
        _kill(bridge)  # no observations the recorder would not see; the learner takes what is in flight
        time.sleep(1.0)
        record = recorder.finish()
    finally:
        recorder.kill()
    ros.stop()  # the learner checkpoints as it shuts down

    tensors, metadata = load_checkpoint(run_dir / "checkpoints" / "learner")
    learner = metadata["learner"]
    obs = tensors["replay.obs"].numpy()[:, 0]
    has_action = tensors["replay.has_action"].numpy()[:, 0]
    filled = int(tensors["replay.filled"].numpy()[0])
    assert filled < obs.shape[0], "the buffer wrapped; the check below assumes it did not"

    # What the bridges published: observation -> (session, sequence), and each one's successor.
    where: dict[bytes, list[tuple[int, int]]] = {}
    successor: dict[tuple[int, int], bytes] = {}
    sessions = set()
    for o in record["observations"]:
        key = (o["session"], o["sequence"])
        sessions.add(o["session"])
        where.setdefault(np.asarray(o["observation"], np.float32).tobytes(), []).append(key)
        if o["has_previous_step"]:
            successor[(o["session"], o["sequence"] - 1)] = np.asarray(o["next"], np.float32).tobytes()
    assert len(sessions) == 2, "the restarted bridge must publish under a new session"

    # Which collector session sent the transition starting at each (bridge session, sequence).
    sender = {(b["bridge_session"], b["first_sequence"] + i): b["session"]
              for b in record["batches"] for i in range(b["count"])}

    slots = np.flatnonzero(has_action[:filled])
    verified, unknown, contradicting = 0, 0, []
    learned_streams: dict[tuple[int, int], int] = {}  # (collector session, bridge session) -> transitions
    for slot in slots:
        start, nxt = obs[slot].tobytes(), obs[slot + 1].tobytes()
        candidates = [k for k in where.get(start, []) if k in successor]
        matching = [k for k in candidates if successor[k] == nxt]
        if not candidates:
            unknown += 1  # the recorder missed one of the two messages
        elif matching:
            verified += 1
            for k in matching[:1]:
                if k in sender:
                    stream = (sender[k], k[0])
                    learned_streams[stream] = learned_streams.get(stream, 0) + 1
        else:
            contradicting.append((int(slot), candidates))
    assert not contradicting, f"transitions not made of consecutive observations of one bridge: {contradicting[:5]}"
    assert unknown <= 0.01 * len(slots), (unknown, len(slots))

    # Counts agree: everything received is in the buffer, by source.
    assert learner["received"] == learner["replay_size"] == len(slots) == verified + unknown
    assert sum(s["transitions"] for s in learner["streams"].values()) == learner["received"]
    assert list(learner["streams"]) == [f"{NS}/experience_collector"]
    # The buffer holds the first collector's stream of the first bridge, the restarted collector's of
    # the first bridge and of the restarted one; each began with a reset (nothing continued across).
    assert len(learned_streams) == 3, learned_streams
    assert len({c for c, _ in learned_streams}) == 2 and len({b for _, b in learned_streams}) == 2, learned_streams
    assert learner["stream_resets"] >= len(learned_streams), (learner["stream_resets"], learned_streams)
    # Learning went on after both restarts.
    history = record["stats"]
    assert history[-1]["updates"] > max(h["updates"] for h in history if h["transitions"] <= second["transitions"])
