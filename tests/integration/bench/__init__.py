"""The load harness against real servers: the echo baseline and a small fake Gateway."""
