"""Generators of the golden data under fixtures/ (run only by `attnconf fixtures regen`)."""
