"""Baselines measured beside the switch: a bare echo server and h2load driving it."""
