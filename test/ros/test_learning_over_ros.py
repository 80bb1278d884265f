"""The headline: the nodes, each in its own process, train the Kuka reach over ROS topics.

gym_bridge → policy_server → safety_shield → gym_bridge is the acting loop; the collector turns
the observation stream into experience for the learner, whose versioned weights policy_server
hot-swaps. A second gym_bridge, driven only through its reset_env / step_env services, evaluates
the served policy (deterministic get_action calls) while training runs.
"""

from rosproc import store_policy

TARGET = 0.9
BUDGET_S = 420  # wall-clock training budget; the run usually stops at the target well before


def test_nodes_in_separate_processes_learn_the_reach_over_ros(ros, tmp_path):
    shared = {"experience": "/experience", "policy_weights": "/policy_weights", "training_stats": "/training_stats"}
    ros.node("learner", {"config": "kuka_reach", "publish_every_updates": 250, "run_dir": str(tmp_path / "run"),
                         # A 64-unit critic and actor learn the reach as fast per step and update
                         # four times faster than 256 (the CPU here is shared by five processes).
                         "overrides": ["sac.hidden_sizes=[64, 64]"]})
    robot = "/robot1"
    ros.node("gym_bridge", {"seed": 0, "max_pending_updates": 100}, namespace=robot, remap=shared)
    ros.node("policy_server", {"seed": 0}, namespace=robot, remap=shared)
    ros.node("safety_shield", {}, namespace=robot)
    ros.node("experience_collector", {}, namespace=robot, remap=shared)
    ros.node("gym_bridge", {"seed": 1, "step_on_command": False, "publish_clock": False}, namespace="/eval")

    result = ros.client("train_until", timeout=BUDGET_S + 240, target=TARGET, budget_s=BUDGET_S, eval_episodes=20,
                        final_episodes=50, seed=0, min_updates=3000,
                        policy=robot + "/get_action", bridge="/eval/")
    ros.alive()
    print(result)
    assert result["final"] is not None, f"no evaluation reached {TARGET} within {BUDGET_S} s: {result}"
    assert result["final"]["success_rate"] >= TARGET, result
    assert result["final"]["versions"] and min(result["final"]["versions"]) >= 1, "evaluated an untrained policy"
    assert result["transitions"] <= 30_000
    ros.stop()  # the learner writes its final policy as it shuts down
    store_policy(tmp_path / "run" / "policy")  # the hardware-backend test drives this policy
