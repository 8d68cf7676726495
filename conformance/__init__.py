"""attention-conformance: the harness that checks attention implementations."""

__version__ = "0.1.0"
