"""The card channel: ISO 8583 (1987) to an acquirer host."""
