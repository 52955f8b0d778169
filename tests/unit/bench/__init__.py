"""Tests of the load harness itself (no network)."""
