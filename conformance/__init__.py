"""attention-conformance: the harness that checks attention implementations."""

from conformance.adapters.declare import adapter

__version__ = "0.1.0"

__all__ = ["__version__", "adapter"]
