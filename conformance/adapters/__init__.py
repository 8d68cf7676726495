"""Adapters: declaring, loading and calling an implementation (in process or in a worker)."""
