"""The kernel implementations, one package per backend:

    numpy/    the naive reference: plain numpy, the test oracle and the benchmark baseline
    numba/    @njit(parallel=True, cache=True) loops, never BLAS
    cython/   Cython wrappers (.pyx) over our own C kernels in csrc/
    cuda/     numba.cuda kernels (optional; checked on Numba's CUDA simulator)

Each package defines NAME and MODULES (the modules holding its kernels); kernel NAME is the
function of that name in one of them, with the calling convention of its declaration in
fastnn/kernels/. Which backends load, and which is current, is fastnn/kernels/dispatch.py's job:
this package imports nothing above it.
"""
