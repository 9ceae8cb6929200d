"""Scanning: walk, hash, probe, plan (disk vs DB), apply (plan → DB), and the scanner."""
