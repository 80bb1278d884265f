"""`drl-ros train --ros`: every node in one process under one executor, a short run end to end."""

import subprocess
import sys

from rosproc import ros_env, new_domain, require_build


def test_drl_ros_train_ros_runs_all_nodes_in_one_process(tmp_path):
    require_build()
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "drl_ros.runtime.cli", "train", "--ros", "kuka_reach", "--run-dir", str(run),
         "--set", "total_steps=400", "--set", "sac.learning_starts=200", "--set", "eval.final_episodes=2",
         "--no-progress"],
        env=ros_env(new_domain()), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Evaluation after 4" in result.stdout, result.stdout
    assert (run / "policy.json").exists() and (run / "eval.json").exists() and (run / "config.yaml").exists()
