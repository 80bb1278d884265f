"""Unit tests of the shield core: URDF limits, YAML tightening, forward kinematics against
PyBullet, the e-stop, lifecycle, action scaling and the intervention record."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

from drl_ros.core.config_loading import ConfigError, load_config
from drl_ros.core.shield import (
    JointLimits,
    JointLimitsOverride,
    LimitsError,
    OrientationConfig,
    Reason,
    RobotState,
    SafetyShield,
    SerialChain,
    ShieldConfig,
    WatchdogConfig,
    load_shield_config,
    parse_urdf_joints,
    tighten_limits,
    urdf_joint_limits,
)

pybullet_data = pytest.importorskip("pybullet_data")
DATA = Path(pybullet_data.getDataPath())
KUKA = DATA / "kuka_iiwa" / "model.urdf"
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "shield" / "kuka_iiwa.yaml"


# -- URDF limits -----------------------------------------------------------------------------------


def test_kuka_limits_match_the_urdf_file() -> None:
    limits = urdf_joint_limits(KUKA)
    assert limits.names == tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
    # The numbers as written in the file, read with a plain regex (independent of the parser).
    text = KUKA.read_text()
    written = re.findall(r'<limit effort="([\d.]+)" lower="([-\d.]+)" upper="([-\d.]+)" velocity="([\d.]+)"/>', text)
    assert len(written) == 7
    for i, (effort, lower, upper, velocity) in enumerate(written):
        assert limits.position_lower[i] == float(lower)
        assert limits.position_upper[i] == float(upper)
        assert limits.velocity[i] == float(velocity)
        assert limits.effort[i] == float(effort)
    np.testing.assert_allclose(limits.position_upper, [2.96705972839, 2.09439510239, 2.96705972839, 2.09439510239,
                                                       2.96705972839, 2.09439510239, 3.05432619099])
    assert np.all(np.isinf(limits.acceleration))  # a URDF has none


def test_kuka_limits_match_pybullets_reading() -> None:
    from drl_ros.envs.sim import pybullet

    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(KUKA), useFixedBase=True, physicsClientId=client)
        infos = [pybullet.getJointInfo(body, j, physicsClientId=client) for j in range(7)]
    finally:
        pybullet.disconnect(client)
    limits = urdf_joint_limits(KUKA)
    assert [info[1].decode() for info in infos] == list(limits.names)
    np.testing.assert_array_equal([info[8] for info in infos], limits.position_lower)
    np.testing.assert_array_equal([info[9] for info in infos], limits.position_upper)
    np.testing.assert_array_equal([info[10] for info in infos], limits.effort)
    np.testing.assert_array_equal([info[11] for info in infos], limits.velocity)


def test_urdf_parsing_handles_fixed_continuous_and_missing_limits(tmp_path: Path) -> None:
    urdf = tmp_path / "robot.urdf"
    urdf.write_text("""<robot name="r">
      <link name="base"/><link name="a"/><link name="b"/><link name="c"/>
      <joint name="mount" type="fixed"><parent link="base"/><child link="a"/></joint>
      <joint name="wheel" type="continuous"><parent link="a"/><child link="b"/><axis xyz="0 0 2"/>
        <limit effort="0" velocity="3"/></joint>
      <joint name="slide" type="prismatic"><parent link="b"/><child link="c"/>
        <limit lower="-0.1" upper="0.2" effort="50" velocity="0.5"/></joint>
    </robot>""")
    joints = parse_urdf_joints(urdf)
    assert [j.name for j in joints] == ["mount", "wheel", "slide"]
    assert joints[1].axis == (0.0, 0.0, 1.0)  # normalized
    limits = urdf_joint_limits(urdf)
    assert limits.names == ("wheel", "slide")
    assert limits.position_lower[0] == -math.inf and limits.effort[0] == math.inf  # 0 effort: unlimited
    assert (limits.position_lower[1], limits.position_upper[1], limits.velocity[1]) == (-0.1, 0.2, 0.5)
    assert urdf_joint_limits(urdf, ["slide"]).names == ("slide",)
    with pytest.raises(LimitsError, match="no movable joint named"):
        urdf_joint_limits(urdf, ["mount"])


@pytest.mark.parametrize("body, match", [
    ("<robot><joint name='j' type='revolute'><parent link='a'/><child link='b'/></joint></robot>", "needs a <limit>"),
    ("<robot><joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
     "<limit lower='1' upper='0' effort='1' velocity='1'/></joint></robot>", "exceeds upper"),
    ("<robot><joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
     "<limit lower='x' upper='0' effort='1' velocity='1'/></joint></robot>", "not a number"),
    ("<robot><joint name='j' type='revolute'><child link='b'/></joint></robot>", "parent"),
    ("<robot><joint", "invalid URDF XML"),
    ("<sdf/>", "not a URDF"),
])
def test_invalid_urdfs_are_refused_with_the_file_and_joint(tmp_path: Path, body: str, match: str) -> None:
    urdf = tmp_path / "bad.urdf"
    urdf.write_text(body)
    with pytest.raises(LimitsError, match=match) as info:
        urdf_joint_limits(urdf)
    assert "bad.urdf" in str(info.value)


# -- tightening ----------------------------------------------------------------------------------


def test_tightening_applies_default_then_per_joint() -> None:
    base = urdf_joint_limits(KUKA)
    tight = tighten_limits(base, JointLimitsOverride(velocity=2.0, acceleration=15.0),
                           {"lbr_iiwa_joint_2": JointLimitsOverride(position_lower=-1.0, position_upper=1.5,
                                                                   velocity=1.0, effort=100.0)})
    assert tight.velocity[0] == 2.0 and tight.velocity[1] == 1.0
    assert np.all(tight.acceleration == 15.0)
    assert (tight.position_lower[1], tight.position_upper[1], tight.effort[1]) == (-1.0, 1.5, 100.0)
    assert tight.position_upper[0] == base.position_upper[0]


@pytest.mark.parametrize("override, field", [
    (JointLimitsOverride(velocity=12.0), "velocity"),
    (JointLimitsOverride(position_upper=3.0), "position_upper"),
    (JointLimitsOverride(position_lower=-3.0), "position_lower"),
    (JointLimitsOverride(effort=301.0), "effort"),
])
def test_loosening_is_refused_with_a_clear_error(override: JointLimitsOverride, field: str) -> None:
    with pytest.raises(LimitsError) as info:
        tighten_limits(urdf_joint_limits(KUKA), per_joint={"lbr_iiwa_joint_1": override}, source="kuka.yaml")
    message = str(info.value)
    assert "kuka.yaml" in message and field in message and "lbr_iiwa_joint_1" in message and "loosen" in message


def test_a_second_override_cannot_loosen_the_first() -> None:
    with pytest.raises(LimitsError, match="loosen"):
        tighten_limits(urdf_joint_limits(KUKA), JointLimitsOverride(velocity=1.0),
                       {"lbr_iiwa_joint_3": JointLimitsOverride(velocity=2.0)})


def test_unknown_joint_and_crossed_range_are_refused() -> None:
    with pytest.raises(LimitsError, match="unknown joints"):
        tighten_limits(urdf_joint_limits(KUKA), per_joint={"elbow": JointLimitsOverride(velocity=1.0)})
    with pytest.raises(LimitsError, match="exceeds"):
        tighten_limits(urdf_joint_limits(KUKA), per_joint={
            "lbr_iiwa_joint_1": JointLimitsOverride(position_lower=1.0, position_upper=0.5)})


def test_shield_yaml_loads_and_loosening_in_yaml_is_refused(tmp_path: Path) -> None:
    config = load_shield_config(EXAMPLE_CONFIG)
    shield = SafetyShield.from_config(config, urdf_dir=DATA)
    assert shield.limits.n == 7 and np.all(shield.limits.acceleration <= 10.0)
    assert shield.limits.velocity.max() <= 1.5
    loose = tmp_path / "loose.yaml"
    loose.write_text(EXAMPLE_CONFIG.read_text() + "\nlimits:\n  lbr_iiwa_joint_4:\n    velocity: 11.0\n")
    with pytest.raises(LimitsError, match=r"limits\.lbr_iiwa_joint_4\.velocity=11.0 would loosen"):
        SafetyShield.from_config(load_shield_config(loose), urdf_dir=DATA)
    typo = tmp_path / "typo.yaml"
    typo.write_text("interface: position\ndefault_limits:\n  acceleraton: 3.0\n")
    with pytest.raises(ConfigError, match="did you mean 'acceleration'"):
        load_config(ShieldConfig, typo)


def test_interfaces_need_the_limits_they_enforce() -> None:
    with pytest.raises(LimitsError, match="acceleration"):
        SafetyShield.from_config(ShieldConfig(urdf=str(KUKA)))  # a URDF has no acceleration limit
    with pytest.raises(ValueError, match="latch"):
        ShieldConfig(latch_on=[Reason.BRAKING])


# -- forward kinematics ------------------------------------------------------------------------


@pytest.mark.parametrize("urdf, base, tip", [
    ("kuka_iiwa/model.urdf", "lbr_iiwa_link_0", "lbr_iiwa_link_7"),
    ("franka_panda/panda.urdf", "panda_link0", "panda_hand"),  # fixed joints in the chain
])
def test_forward_kinematics_matches_pybullet(urdf: str, base: str, tip: str) -> None:
    from drl_ros.envs.sim import pybullet

    path = DATA / urdf
    limits = urdf_joint_limits(path)
    chain = SerialChain.from_urdf(path, base, tip, limits.names)
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(path), useFixedBase=True, physicsClientId=client)
        infos = [pybullet.getJointInfo(body, j, physicsClientId=client) for j in
                 range(pybullet.getNumJoints(body, physicsClientId=client))]
        index = {info[1].decode(): info[0] for info in infos}
        tip_index = [info[12].decode() for info in infos].index(tip)
        rng = np.random.default_rng(0)
        for _ in range(200):
            q = rng.uniform(np.maximum(limits.position_lower, -3.0), np.minimum(limits.position_upper, 3.0))
            for name, value in zip(limits.names, q):
                pybullet.resetJointState(body, index[name], float(value), physicsClientId=client)
            state = pybullet.getLinkState(body, tip_index, computeForwardKinematics=True, physicsClientId=client)
            pose = chain.pose(q)
            # pybullet reports link frames in single precision.
            np.testing.assert_allclose(pose[:3, 3], state[4], atol=2e-6)
            rotation = np.array(pybullet.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            np.testing.assert_allclose(pose[:3, :3], rotation, atol=2e-6)
    finally:
        pybullet.disconnect(client)


def test_chain_errors() -> None:
    with pytest.raises(LimitsError, match="no link named"):
        SerialChain.from_urdf(KUKA, "lbr_iiwa_link_0", "gripper")
    with pytest.raises(LimitsError, match="does not descend"):
        SerialChain.from_urdf(KUKA, "lbr_iiwa_link_5", "lbr_iiwa_link_2")


# -- pipeline behaviour ----------------------------------------------------------------------------


def _arm(**config: object) -> SafetyShield:
    limits = JointLimits.create(["a", "b"], position_lower=-1.0, position_upper=1.0, velocity=1.0,
                                acceleration=10.0, effort=5.0, effort_rate=100.0)
    return SafetyShield(ShieldConfig(**config), limits)  # type: ignore[arg-type]


def test_position_stream_brakes_before_the_limit_and_stops_inside() -> None:
    shield = _arm(latch_on=[])
    q, now, reasons = np.zeros(2), 0.0, set()
    for _ in range(200):
        out = shield.filter([5.0, -5.0], RobotState(q, np.zeros(2)), now)  # far beyond both limits
        assert not out.fallback
        reasons |= out.reasons
        q, now = out.command, now + 0.02
    np.testing.assert_allclose(q, [1.0, -1.0], atol=1e-9)  # arrives, never beyond
    assert {Reason.POSITION_LIMIT, Reason.VELOCITY_LIMIT, Reason.ACCELERATION_LIMIT} <= reasons


def test_every_intervention_is_recorded_with_reason_message_and_cost() -> None:
    shield = _arm(latch_on=[], normalized_actions=True)
    out = shield.filter([3.0, 0.0], RobotState([0.0, 0.0], [0.0, 0.0]), 0.0)
    assert Reason.ACTION_CLIPPED in out.reasons
    clipped = next(i for i in out.interventions if i.reason is Reason.ACTION_CLIPPED)
    assert clipped.joints == (0,) and "[-1, 1]" in clipped.message
    assert out.cost > len(out.reasons)  # the correction itself counts too
    assert shield.counts[Reason.ACTION_CLIPPED] == 1 and shield.events[-1][0] == 0.0
    calm = shield.filter([0.0, 0.0], RobotState(out.command, [0.0, 0.0]), 0.02)
    assert calm.cost >= 0.0 and np.all(np.abs(calm.applied_action) <= 1.0)


def test_lifecycle_inactive_outputs_the_fallback() -> None:
    shield = _arm(interface="velocity", latch_on=[])
    shield.deactivate()
    out = shield.filter([0.5, 0.5], RobotState([0.0, 0.0], [0.2, 0.2]), 0.0)
    assert out.fallback and Reason.INACTIVE in out.reasons and np.all(out.command == 0.0)
    shield.activate()
    out = shield.filter([0.5, 0.5], RobotState([0.0, 0.0], [0.0, 0.0]), 0.02)
    assert not out.fallback and np.all(out.command > 0.0)


def test_effort_fallback_is_damping() -> None:
    shield = _arm(interface="effort", damping=[2.0, 3.0], latch_on=[])
    shield.observe(RobotState([0.0, 0.0], [0.5, -1.0]), 0.0)
    shield.propose([np.nan, 0.0], 0.0)
    out = shield.step(0.0)
    np.testing.assert_array_equal(out.command, [-1.0, 3.0])
    out = shield.step(1.0)  # stale velocity: no damping on a guess
    np.testing.assert_array_equal(out.command, [0.0, 0.0])


def test_position_shield_before_any_state_commands_nothing() -> None:
    shield = _arm(latch_on=[])
    shield.propose([0.1, 0.1], 0.0)
    out = shield.step(0.0)
    assert out.command is None and out.fallback and Reason.OBSERVATION_TIMEOUT in out.reasons


def test_estop_reset_is_refused_while_the_cause_persists() -> None:
    shield = _arm(interface="position", orientation=OrientationConfig(max_roll=0.3, max_pitch=0.3),
                  latch_on=[Reason.ORIENTATION_LIMIT])
    tipped = [math.sin(0.25), 0.0, 0.0, math.cos(0.25)]  # roll 0.5 rad
    upright = [0.0, 0.0, 0.0, 1.0]
    out = shield.filter([0.1, 0.1], RobotState([0.0, 0.0], [0.0, 0.0], orientation=tipped), 0.0)
    assert out.fallback and shield.estop_latched
    assert Reason.ORIENTATION_LIMIT in shield.latched_causes
    result = shield.reset_estop(0.01)
    assert not result.accepted and Reason.ORIENTATION_LIMIT in result.persisting and "roll" in result.message
    shield.observe(RobotState([0.0, 0.0], [0.0, 0.0], orientation=upright), 0.02)
    out = shield.filter([0.1, 0.1], RobotState([0.0, 0.0], [0.0, 0.0], orientation=upright), 0.02)
    assert out.fallback and Reason.ESTOP in out.reasons  # upright again, but still latched
    result = shield.reset_estop(0.03)
    assert result.accepted, result.message
    out = shield.filter([0.1, 0.1], RobotState([0.0, 0.0], [0.0, 0.0], orientation=upright), 0.04)
    assert not out.fallback
    # Reset without a fresh observation cannot verify anything.
    shield.request_estop("test", 0.05)
    assert not shield.reset_estop(5.0).accepted


def test_tracking_error_fault() -> None:
    shield = _arm(max_tracking_error=0.05, latch_on=[Reason.TRACKING_ERROR],
                  watchdog=WatchdogConfig(1.0, 1.0))
    out = shield.filter([0.0, 0.0], RobotState([0.0, 0.0], [0.0, 0.0]), 0.0)
    assert not out.fallback
    out = shield.filter([0.0, 0.0], RobotState([0.2, 0.0], [0.0, 0.0]), 0.02)  # pushed away
    assert out.fallback and Reason.TRACKING_ERROR in out.reasons and shield.estop_latched
    np.testing.assert_array_equal(out.command, [0.2, 0.0])  # hold where it is
    assert shield.reset_estop(0.03).accepted  # the hold re-bases the command stream


def test_example_config_runs_the_kuka_arm_in_its_workspace() -> None:
    config = load_shield_config(EXAMPLE_CONFIG)
    shield = SafetyShield.from_config(config, urdf_dir=DATA)
    q = np.array([0.0, 0.5, 0.0, -1.585, 0.0, 1.055, 0.0])
    for k in range(100):
        out = shield.filter(np.ones(7), RobotState(q, np.zeros(7)), k * config.control_period)
        assert not out.fallback, out.interventions
        q = out.command
    assert Reason.WORKSPACE_LIMIT in out.reasons or np.all(q <= shield.limits.position_upper)
    assert os.fspath(EXAMPLE_CONFIG).endswith(".yaml")
