"""Embedded wiring: training loop, evaluation, command-line interface."""
