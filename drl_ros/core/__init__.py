"""ROS-free and simulator-free core of drl_ros: configs, networks, buffers, policies, algorithms."""
