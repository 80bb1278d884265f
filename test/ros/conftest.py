import pytest

from rosproc import RosGraph, require_build


@pytest.fixture
def ros(tmp_path):
    """A fresh ROS graph of node processes on its own domain, localhost discovery only."""
    require_build()
    graph = RosGraph(tmp_path)
    try:
        yield graph
    finally:
        graph.stop()
