"""Naming the cause of a mismatch by evidence (NumPy only)."""
