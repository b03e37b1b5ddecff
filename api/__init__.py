"""The HTTP API for the upstream channels: validate, authorize, call store or Temporal."""
