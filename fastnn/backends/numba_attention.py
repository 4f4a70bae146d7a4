"""Numba kernels: attention family (see fastnn/backends/reference.py for the math)."""

__all__ = []
