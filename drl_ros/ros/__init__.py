"""The ROS 2 layer: message <-> numpy conversions, QoS profiles, parameters from config dataclasses.

Only this package and :mod:`drl_ros.nodes` import rclpy (DESIGN.md section 3). ``configs`` is the
one module here that does not, so the node settings can be read and tested without ROS.
"""
