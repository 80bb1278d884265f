"""policy_server over real rclpy: a separate client process gets the in-process policy's actions,
bad requests get errors while the node keeps serving, and new weights are hot-swapped."""

import math

import numpy as np
import torch

from drl_ros.core.policy import Policy
from drl_ros.core.spaces import BoxSpec

OBS_DIM, ACT_DIM = 23, 3


def _policy(seed: int, version: int, path):
    torch.manual_seed(seed)
    policy = Policy.create(BoxSpec((-2.0,) * OBS_DIM, (2.0,) * OBS_DIM), BoxSpec((-1.0,) * ACT_DIM, (1.0,) * ACT_DIM),
                           "squashed_gaussian", [64, 64], "relu", normalize_observations=True)
    policy.normalizer.update(np.random.default_rng(seed).normal(size=(100, OBS_DIM)))
    policy.version = version
    policy.save(path)
    return policy.eval()


def test_service_answers_like_the_in_process_policy_and_survives_bad_requests(ros, tmp_path):
    policy = _policy(0, 7, tmp_path / "policy")
    ros.node("policy_server", {"policy_file": str(tmp_path / "policy"), "hot_swap": False})
    observations = np.random.default_rng(1).uniform(-2, 2, size=(20, OBS_DIM)).astype(np.float32)
    answers = ros.client("get_actions", service="get_action", observations=observations.tolist())
    expected = policy.act(observations, deterministic=True).env_action
    assert all(a["success"] and a["version"] == 7 for a in answers)
    np.testing.assert_allclose(np.array([a["action"] for a in answers]), expected, atol=1e-6)

    good = observations[0].tolist()
    bad = [good[:-1], good + [0.0], [], [math.nan] + good[1:], good[:5] + [math.inf] + good[6:]]
    answers = ros.client("raw_requests", service="get_action", requests=bad + [good])
    for answer in answers[:-1]:
        assert not answer["success"] and answer["action"] == []
    assert "expected 23" in answers[0]["message"] and "expected 23" in answers[1]["message"]
    assert "empty" in answers[2]["message"]
    assert "non-finite" in answers[3]["message"] and "[0]" in answers[3]["message"]
    assert "[5]" in answers[4]["message"]
    assert answers[-1]["success"], "the server stopped serving after bad requests"
    np.testing.assert_allclose(answers[-1]["action"], expected[0], atol=1e-6)
    ros.alive()


def test_hot_swap_serves_new_weights_and_reports_their_version(ros, tmp_path):
    first = _policy(1, 1, tmp_path / "first")
    second = _policy(2, 2, tmp_path / "second")
    ros.node("policy_server", {"policy_file": str(tmp_path / "first")})
    observation = np.random.default_rng(3).uniform(-2, 2, size=OBS_DIM).astype(np.float32)
    seen = ros.client("swap", service="get_action", observation=observation.tolist(),
                      policies=[[str(tmp_path / "second"), 2], [str(tmp_path / "second"), 5]])
    assert [s["version"] for s in seen] == [2, 5]
    np.testing.assert_allclose(seen[0]["action"], second.act(observation, deterministic=True).env_action[0],
                               atol=1e-6)
    assert not np.allclose(seen[0]["action"], first.act(observation, deterministic=True).env_action[0], atol=1e-3)
    ros.alive()
