"""safety_shield over real rclpy: clip to bounds, NaN and wrong lengths → fallback, e-stop → fallback."""

import math


def test_shield_clips_rejects_non_finite_and_obeys_estop(ros):
    ros.node("safety_shield", {"action_low": [-1.0, -1.0, -0.5], "action_high": [1.0, 1.0, 0.5],
                               "fallback_action": [0.0, 0.0, 0.0]})
    actions = [[0.1, -0.2, 0.3], [2.0, -3.0, 0.4], [math.nan, 0.0, 0.0], [math.inf, 0.0, 0.0], [0.1, 0.2],
               [0.5, 0.5, 0.5]]
    out = ros.client("shield_probe", actions=actions, estop_after=5)
    assert all(o is not None for o in out), out
    ok, clipped, nan, inf, short, stopped = out
    assert ok["command"] == [0.10000000149011612, -0.20000000298023224, 0.30000001192092896]
    assert not ok["intervened"] and ok["version"] == 3 and ok["active"]
    assert clipped["command"] == [1.0, -1.0, 0.4000000059604645] and clipped["clipped"] == 2 and clipped["intervened"]
    for rejected in (nan, inf):
        assert rejected["command"] == [0.0, 0.0, 0.0] and rejected["non_finite"] and rejected["intervened"]
    assert short["command"] == [0.0, 0.0, 0.0] and "expected 3" in short["reason"]
    assert stopped["estop"] and stopped["command"] == [0.0, 0.0, 0.0] and "e-stop" in stopped["reason"]
    ros.alive()
