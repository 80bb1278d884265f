"""The drl_ros ROS 2 nodes, one module and ``main()`` per executable (``lib/drl_ros/<node>``).

Thin by design: each converts messages (:mod:`drl_ros.ros.conversions`), calls the core, and
publishes. QoS profiles come in from :mod:`drl_ros.ros.qos`; parameters from one dataclass in
:mod:`drl_ros.ros.configs`.
"""
