"""One PyBullet physics client, shared by a robot and a task (panda-gym style injection).

The simulator is the only place that creates a pybullet client. Robots and tasks receive a
:class:`PyBulletSim` and call pybullet through ``sim.client``, so several environments can live
in one process (each with its own client) without touching pybullet's global default client.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


@contextlib.contextmanager
def _silence_c_stdout():  # type: ignore[no-untyped-def]
    """PyBullet's C code prints a build banner on import and ``argv[0]=`` on every connect straight
    to file descriptor 1; hide those so training output stays readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            try:
                yield
            finally:
                # C stdio buffers the banner; flush it into /dev/null before fd 1 is restored.
                _libc_fflush()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _libc_fflush() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # not a glibc-like platform: the banner just stays visible
        pass


with _silence_c_stdout():
    import pybullet
import pybullet_data
from pybullet_utils.bullet_client import BulletClient

__all__ = ["DEFAULT_PHYSICS_HZ", "DEFAULT_SUBSTEPS", "PyBulletSim"]

# 240 Hz is the physics rate pybullet is tuned for; 5 substeps give 48 Hz control. Measured on
# one core, DIRECT, random actions: KukaReach ee_delta ran 1.9 k env steps/s with 10 substeps
# (24 Hz) and 2.9 k with 5 (joint_delta: 2.2 k -> 3.4 k); physics is most of a step. A
# proportional controller still reaches 100 % of 200 seeded goals at 48 Hz (median 8 steps,
# worst 13 of 50; 5 and 9 at 24 Hz), so the faster rate costs no solvability. 2-4 substeps
# (60-120 Hz) gained under 25 % more for ee_delta (IK then dominates) while a reach took up to
# twice as many steps, which makes credit assignment harder for learning.
DEFAULT_PHYSICS_HZ: float = 240.0
DEFAULT_SUBSTEPS: int = 5


class PyBulletSim:
    """A pybullet client plus the fixed physics/control timing of one environment.

    One control step (:meth:`step`) advances the physics ``substeps`` times at ``physics_hz``,
    so the control frequency is ``physics_hz / substeps``.

    Args:
        render_mode: ``"human"`` opens the pybullet GUI (on Linux it needs ``DISPLAY``, else
            RuntimeError); anything else (``None``, ``"rgb_array"``) uses the headless DIRECT
            server, which is what training wants.
        physics_hz: physics integration frequency in Hz. 240 Hz is pybullet's tuned default.
        substeps: physics steps per control step.
        gravity: z component of gravity in m/s^2.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        physics_hz: float = DEFAULT_PHYSICS_HZ,
        substeps: int = DEFAULT_SUBSTEPS,
        gravity: float = -9.81,
    ) -> None:
        if physics_hz <= 0:
            raise ValueError(f"physics_hz must be positive, got {physics_hz}")
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        if render_mode == "human" and not _display_available():
            # pybullet's GUI calls exit() when it finds no X server, killing the whole process
            # (a training run, a test session); fail with an exception instead.
            raise RuntimeError(
                'render_mode="human" needs a display (DISPLAY is not set); '
                'use render_mode="rgb_array" on headless machines'
            )
        self.render_mode = render_mode
        self.physics_hz = float(physics_hz)
        self.substeps = int(substeps)
        connection_mode = pybullet.GUI if render_mode == "human" else pybullet.DIRECT
        with _silence_c_stdout():
            self.client: BulletClient = BulletClient(connection_mode=connection_mode)
        self.client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.client.setTimeStep(1.0 / self.physics_hz)
        self.client.setGravity(0.0, 0.0, gravity)
        if render_mode == "human":
            # Hide the GUI side panels: they cost frame time and hide the scene.
            self.client.configureDebugVisualizer(pybullet.COV_ENABLE_GUI, 0)
        self._closed = False

    @property
    def physics_dt(self) -> float:
        """Seconds per physics step."""
        return 1.0 / self.physics_hz

    @property
    def control_dt(self) -> float:
        """Seconds per control step (``substeps`` physics steps)."""
        return self.substeps / self.physics_hz

    @property
    def control_hz(self) -> float:
        """Control steps per second of simulated time."""
        return self.physics_hz / self.substeps

    def step(self) -> None:
        """Advance the simulation by one control step (``substeps`` physics steps)."""
        for _ in range(self.substeps):
            self.client.stepSimulation()

    def load_urdf(
        self,
        file_name: str,
        base_position: npt.ArrayLike = (0.0, 0.0, 0.0),
        base_orientation: npt.ArrayLike = (0.0, 0.0, 0.0, 1.0),
        use_fixed_base: bool = False,
        flags: int = 0,
    ) -> int:
        """Load a URDF, searched first in ``pybullet_data``; returns the body id.

        Args:
            file_name: path relative to ``pybullet_data`` (e.g. ``"kuka_iiwa/model.urdf"``) or
                an absolute path.
            base_position: (3,) world position of the base link.
            base_orientation: (4,) quaternion (x, y, z, w) of the base link.
            use_fixed_base: weld the base to the world (robot arms on a table).
            flags: pybullet ``URDF_*`` loading flags.
        """
        return int(
            self.client.loadURDF(
                file_name,
                basePosition=_floats(base_position),
                baseOrientation=_floats(base_orientation),
                useFixedBase=use_fixed_base,
                flags=flags,
            )
        )

    def create_visual_sphere(
        self,
        radius: float,
        rgba: Sequence[float] = (0.1, 0.9, 0.1, 0.5),
        position: npt.ArrayLike = (0.0, 0.0, 0.0),
    ) -> int:
        """Create a massless, visual-only sphere (a goal marker); returns the body id.

        It has no collision shape, so the robot passes through it and physics is unchanged
        by its presence.
        """
        visual = self.client.createVisualShape(
            pybullet.GEOM_SPHERE, radius=radius, rgbaColor=list(rgba)
        )
        return int(
            self.client.createMultiBody(
                baseMass=0.0,
                baseCollisionShapeIndex=-1,
                baseVisualShapeIndex=visual,
                basePosition=_floats(position),
            )
        )

    def set_base_pose(
        self,
        body: int,
        position: npt.ArrayLike,
        orientation: npt.ArrayLike = (0.0, 0.0, 0.0, 1.0),
    ) -> None:
        """Teleport a body's base to ``position`` (3,) with quaternion ``orientation`` (4,)."""
        self.client.resetBasePositionAndOrientation(body, _floats(position), _floats(orientation))

    def render_rgb_array(
        self,
        width: int = 480,
        height: int = 360,
        target: npt.ArrayLike = (0.3, 0.0, 0.45),
        distance: float = 1.5,
        yaw: float = 60.0,
        pitch: float = -20.0,
    ) -> np.ndarray:
        """Render an RGB image from an orbit camera looking at ``target``.

        Uses the CPU TinyRenderer so it works in DIRECT mode without a display or GPU.

        Args:
            width, height: image size in pixels.
            target: (3,) world point the camera looks at.
            distance: camera distance from ``target`` in metres.
            yaw, pitch: camera angles in degrees.

        Returns:
            (height, width, 3) uint8 RGB image.
        """
        view = self.client.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=_floats(target),
            distance=distance,
            yaw=yaw,
            pitch=pitch,
            roll=0.0,
            upAxisIndex=2,
        )
        projection = self.client.computeProjectionMatrixFOV(
            fov=60.0, aspect=width / height, nearVal=0.05, farVal=10.0
        )
        _, _, rgba, _, _ = self.client.getCameraImage(
            width=width,
            height=height,
            viewMatrix=view,
            projectionMatrix=projection,
            renderer=pybullet.ER_TINY_RENDERER,
        )
        # pybullet returns a flat list or an (H, W, 4) array depending on its numpy build.
        image = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
        return np.ascontiguousarray(image[:, :, :3])

    def close(self) -> None:
        """Disconnect the client. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            # pybullet.error: already disconnected (e.g. the user closed the GUI window).
            with contextlib.suppress(pybullet.error):
                self.client.disconnect()


def _display_available() -> bool:
    """Whether pybullet's GUI can open a window (on Linux it needs an X server)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY"))
    return True


def _floats(values: npt.ArrayLike) -> list[float]:
    """A flat list of Python floats: what pybullet's C API parses fastest and without surprise."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
