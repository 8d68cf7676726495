"""Judging one output: the tolerance model and the comparison that gives a verdict and its
message.
"""
