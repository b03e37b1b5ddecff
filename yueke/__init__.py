"""Yueke (约课): class booking for online 1-on-1 English classes."""
