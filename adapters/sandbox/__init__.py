"""The sandbox channel: outcomes chosen by test cards and wallet codes, for demos and benches."""
