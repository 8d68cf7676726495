"""The adapter in a worker process: the worker, its parent side and the wire format between
them.
"""
