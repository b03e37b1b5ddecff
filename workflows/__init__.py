"""Long-lived flows, one module each. Deterministic: no I/O, Temporal's clock and timers."""
