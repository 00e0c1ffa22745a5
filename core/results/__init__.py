"""Evaluation records, metrics, and every figure as a pure function, with their shared style."""
