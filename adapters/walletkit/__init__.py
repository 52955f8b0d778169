"""Pieces the two wallet channels share: RSA keys, a small HTTP/1.1 client and server, memos."""
