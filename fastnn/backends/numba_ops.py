"""Numba kernels: ops family (see fastnn/backends/reference.py for the math)."""

__all__ = []
