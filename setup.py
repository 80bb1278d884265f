"""pip install of drl_ros (embedded mode and the ``drl-ros`` CLI); metadata lives in setup.cfg.

The run configs in ``config/`` are installed to ``<prefix>/share/drl_ros/config``, the same place
the ROS build (CMakeLists.txt) puts them, so ``drl-ros train kuka_reach`` finds them either way.
"""

from glob import glob

from setuptools import setup

setup(
    data_files=[("share/drl_ros/config", sorted(glob("config/*.yaml"))),
                ("share/ament_index/resource_index/packages", ["resource/drl_ros"]),
                ("share/drl_ros", ["package.xml"])],
)
