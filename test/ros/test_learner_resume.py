"""The learner node killed with SIGKILL and started again resumes from its last atomic checkpoint:
the same update count, transitions and replay contents as saved, and weights published under a
version above every version published before the kill (policy servers take them as newer)."""

import os
import signal

from suite_proc import run_client

from drl_ros.runtime.experience_learner import ExperienceLearner

SOURCE = "/robot9/experience_collector"


def test_learner_killed_and_restarted_resumes_from_its_checkpoint(ros, tmp_path):
    run_dir = tmp_path / "run"
    params = {"config": "kuka_reach", "run_dir": str(run_dir), "checkpoint_every_updates": 50,
              "publish_every_updates": 40,
              "overrides": ["sac.learning_starts=100", "sac.hidden_sizes=[32, 32]", "sac.batch_size=64"]}
    learner = ros.node("learner", params)
    before = run_client(ros, "feed_experience", timeout=180, batches=20, size=20, seed=0, source_name=SOURCE)
    assert before["transitions"] == 400 and before["updates"] == 301, before
    os.killpg(learner.pid, signal.SIGKILL)  # no clean-up: what survives is what was on disk
    learner.wait()

    saved = ExperienceLearner.checkpoint_summary(run_dir)
    assert saved["updates"] == 300 and saved["received"] == 400 and saved["replay_size"] == 400, saved
    assert saved["published_version"] >= before["policy_version"] >= 7, (saved, before)

    restarted = ros.node("learner", params, name="learner_restarted")
    after = run_client(ros, "learner_after_restart", timeout=180, wait_s=120)
    # The weights it publishes at start are the checkpoint's, under a version never used before.
    assert after["weights_extra"] == {"updates": saved["updates"], "transitions": saved["received"]}, after
    assert after["weights_version"] == saved["published_version"] + 1, (after, saved)
    # Its counters continue from the checkpoint (the one update owed for experience the
    # checkpoint already holds may be done before the first statistics go out).
    assert after["transitions"] == saved["received"], after
    assert after["updates"] in (saved["updates"], saved["updates"] + 1), after

    # It keeps learning where it stopped: the update schedule and versions carry on.
    more = run_client(ros, "feed_experience", timeout=180, batches=5, size=20, seed=1, source_name=SOURCE)
    assert more["transitions"] == 500 and more["updates"] == 401, more
    assert more["policy_version"] > after["weights_version"], more
    assert restarted.poll() is None, ros.logs()
