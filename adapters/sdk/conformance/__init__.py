"""The conformance suite: checks any adapter worker can be run against, by command or pytest."""
