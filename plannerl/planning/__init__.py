"""Optimal plans: the compiled bitmask task and C core, search, heuristics, symmetry, the oracle."""
