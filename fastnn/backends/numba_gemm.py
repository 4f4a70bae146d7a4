"""Numba kernels: gemm family (see fastnn/backends/reference.py for the math)."""

__all__ = []
