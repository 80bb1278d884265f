"""Settings of the whole test session (every test directory, every xdist worker)."""

import signal


def pytest_configure(config):
    # A suite started in the background (nohup, `cmd &`, some CI runners) inherits SIGINT as
    # ignored, and so would every process a test starts; the tests that stop a training run or a
    # node with SIGINT (Ctrl-C) need it delivered. A Python handler is reset to the default in
    # child processes, where Python then installs its own.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
