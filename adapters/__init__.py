"""Channel adapters: the SDK adapter authors import, and one package per channel."""
