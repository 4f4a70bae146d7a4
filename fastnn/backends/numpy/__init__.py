"""The numpy reference backend: plain numpy, written the way a student would.

It is the test oracle and the benchmark baseline, so it stays short and obviously right:
temporaries and all. Every other backend implements these same names and signatures.

Calling convention (shared by every backend, see fastnn/kernels/ for the declarations):
inputs are already validated, C-contiguous and of one float dtype (float32 or float64);
elementwise kernels see 1-D arrays, row kernels see 2-D arrays (rows, features).
"""
from . import attention, conv, gemm, ops, pool, select

NAME = "numpy"
MODULES = (gemm, ops, attention, conv, pool, select)
