"""gym_bridge's hardware backend, end to end without hardware: the simulated driver (PyBullet
behind joint_states and a forward-command topic) carries out a trained policy's commands, which
pass the safety shield and the bridge's joint map on their way to the driver."""

from rosproc import ROOT, trained_reach_policy


def test_trained_policy_reaches_through_shield_and_driver_topics(ros):
    policy = trained_reach_policy()
    ns = "/arm"
    # The driver's own joint names, not the URDF's: the bridge's joint map must translate them.
    driver_names = [f"iiwa_j{i}" for i in range(1, 8)]
    ros.node("sim_driver", {"joint_names": driver_names, "publish_hz": 100.0, "command_topic": "driver/commands"},
             namespace=ns)
    ros.node("gym_bridge", {"backend": "hardware", "joint_names": driver_names, "command_topic": "driver/commands"},
             namespace=ns)
    ros.node("policy_server", {"policy_file": str(policy), "deterministic": True, "hot_swap": False}, namespace=ns)
    ros.node("safety_shield", {}, namespace=ns)
    watched = ros.client("watch_hardware", timeout=240, seconds=12.0, namespace=ns, driver_topic="driver/commands")
    ros.alive()
    assert watched["command_width"] == 7
    assert watched["commands"] >= 100, watched
    assert watched["episodes"] >= 3, watched
    assert watched["versions"] and all(v >= 0 for v in watched["versions"]), watched
    assert watched["successes"] >= 0.6 * watched["episodes"], watched


def test_trained_policy_reaches_with_the_joint_shield_between_bridge_and_driver(ros):
    """deploy.launch.py's chain with ``joint_shield``: the bridge's joint position targets pass a
    joint-mode shield (the Kuka's URDF limits tightened by config/shield/kuka_iiwa.yaml, its
    workspace box, tracking-error and watchdog checks) before they reach the driver."""
    policy = trained_reach_policy()
    ns = "/arm"
    ros.node("sim_driver", {"publish_hz": 100.0, "command_topic": "driver/commands"}, namespace=ns)
    ros.node("gym_bridge", {"backend": "hardware", "command_topic": "joint_target"}, namespace=ns)
    ros.node("policy_server", {"policy_file": str(policy), "deterministic": True, "hot_swap": False}, namespace=ns)
    ros.node("safety_shield", {}, namespace=ns)
    # The file's 1.5 rad/s and 10 rad/s² are tighter than the motion the policy was trained
    # with (up to 5 cm per 50 ms step at the flange): with them the arm reaches, but too slowly to
    # succeed within its episodes as often. Parameters override the file, never the URDF.
    ros.node("safety_shield", {"config_file": str(ROOT / "config" / "shield" / "kuka_iiwa.yaml"),
                               "normalized_actions": False, "default_limits.velocity": 3.0,
                               "default_limits.acceleration": 30.0},
             namespace=f"{ns}/joint_shield", name="joint_shield",
             remap={"joint_states": f"{ns}/joint_states", "joint_target": f"{ns}/joint_target",
                    "joint_command": f"{ns}/driver/commands"})
    watched = ros.client("watch_hardware", timeout=240, seconds=12.0, namespace=ns, driver_topic="driver/commands")
    ros.alive()
    assert watched["command_width"] == 7
    assert watched["commands"] >= 100, watched
    assert watched["episodes"] >= 3, watched
    assert watched["successes"] >= 0.6 * watched["episodes"], watched
