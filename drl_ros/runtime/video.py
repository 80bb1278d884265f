"""Write rendered ``rgb_array`` frames to a video: MP4 through imageio's ffmpeg when the ``video``
extra is installed, an animated GIF through Pillow (a matplotlib dependency) otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["default_video_path", "mp4_available", "write_video"]


def mp4_available() -> bool:
    """Whether imageio and its bundled ffmpeg binary are importable (``pip install drl_ros[video]``)."""
    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def default_video_path(run_dir: Path) -> Path:
    """``RUN/eval.mp4``, or ``RUN/eval.gif`` without ffmpeg."""
    return Path(run_dir) / ("eval.mp4" if mp4_available() else "eval.gif")


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``frames`` (each (H, W, 3) uint8) at ``fps`` frames per second.

    The suffix picks the format: ``.mp4`` (needs the ``video`` extra) or ``.gif``. Returns the
    path written.

    Raises:
        ValueError: no frames, an unknown suffix, or ``.mp4`` without imageio-ffmpeg.
    """
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write (does the env render rgb_array?)")
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        if not mp4_available():
            raise ValueError("MP4 needs imageio and imageio-ffmpeg (pip install 'drl_ros[video]'); "
                             "use a .gif path instead")
        import imageio.v2 as imageio

        # libx264 wants even sizes; macro_block_size=2 pads at most one pixel instead of 16.
        imageio.mimwrite(path, [np.asarray(f, dtype=np.uint8) for f in frames], fps=fps,
                         codec="libx264", quality=7, macro_block_size=2)
    elif suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, round(1000.0 / fps)))
    else:
        raise ValueError(f"video path must end in .mp4 or .gif, got {path.name!r}")
    return path
