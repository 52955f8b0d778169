"""The load-testing harness for the hot path and its baseline servers."""
