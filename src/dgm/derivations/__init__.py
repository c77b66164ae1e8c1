"""Derivations whose every step is checked, the notation they print in, and the answer checker (SymPy, no torch)."""
