"""Several robots feed one learner: two namespaces (/robot0, /robot1), each with its own
gym_bridge, policy_server and experience_collector, share one learner over the global experience,
policy_weights and training_stats topics. The learner counts experience from both sources, and
both policy servers hot-swap to its newest weights.

The shield is left out of this chain on purpose (policy_server's raw_action goes straight to the
bridge's command): what is tested here is the routing of experience and weights."""

from suite_proc import run_client

NAMESPACES = ["/robot0", "/robot1"]


def test_two_namespaced_robots_feed_one_learner_and_both_servers_swap(ros, tmp_path):
    ros.node("learner", {"config": "kuka_reach", "publish_every_updates": 50,
                         "overrides": ["sac.learning_starts=200", "sac.hidden_sizes=[32, 32]", "sac.batch_size=64"]})
    shared = {"experience": "/experience", "policy_weights": "/policy_weights", "training_stats": "/training_stats"}
    for i, ns in enumerate(NAMESPACES):
        ros.node("gym_bridge", {"seed": i, "publish_clock": False, "max_pending_updates": 50}, namespace=ns,
                 remap=shared)
        ros.node("policy_server", {"seed": i}, namespace=ns, remap={**shared, "raw_action": "command"})
        ros.node("experience_collector", {}, namespace=ns, remap=shared)
    result = run_client(ros, "watch_versions", timeout=240, namespaces=NAMESPACES, seconds=120.0,
                        min_transitions=150)
    ros.alive()
    print(result)
    sources = result["sources"]
    assert sorted(sources) == [f"{ns}/experience_collector" for ns in NAMESPACES], sources
    assert min(sources.values()) >= 150, sources
    assert sum(sources.values()) == result["transitions"], result
    assert result["published"] >= 1 and result["updates"] > 0, result
    assert all(v >= result["published"] for v in result["served"].values()), result
