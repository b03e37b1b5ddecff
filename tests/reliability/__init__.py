"""Reliability: the real API, worker, PostgreSQL and Temporal as processes, raced, killed and
stopped; each test checks the data's invariants and every answer afterwards."""
