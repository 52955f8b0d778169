"""A minimal working channel to copy when writing a new one (registered nowhere)."""
