"""Builds the C kernels (csrc/) and their Cython wrappers into three extension modules.

One binary runs on any x86-64 CPU: no -march flags here; the AVX2 and AVX-512 code paths are
compiled per function (#pragma GCC target in csrc/) and chosen at run time (csrc/cpu.c).
"""
import glob
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    cflags, lflags = ["/O2", "/openmp"], []
elif sys.platform == "darwin":  # Apple clang has no -fopenmp; build single-threaded
    cflags, lflags = ["-O3", "-fno-math-errno"], []
else:
    cflags = ["-O3", "-fopenmp", "-fno-math-errno", "-std=gnu11"]
    lflags = ["-fopenmp"]
if os.environ.get("FASTNN_DEBUG"):
    cflags += ["-O0", "-g", "-fsanitize=address,undefined"]
    lflags += ["-fsanitize=address,undefined"]


def ext(name, *patterns):
    sources = [f"fastnn/backends/cython/_{name}.pyx", "csrc/cpu.c"] + sorted(
        f for pattern in patterns for f in glob.glob(pattern))
    return Extension(
        f"fastnn.backends.cython._{name}",
        sources,
        include_dirs=["csrc", np.get_include()],
        # rebuild when a shared header changes
        depends=sorted(glob.glob("csrc/*.h")) + ["fastnn/backends/cython/_runtime.pxi",
                                                   "fastnn/backends/cython/_common.pxd"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=cflags,
        extra_link_args=lflags,
    )


extensions = [ext("gemm", "csrc/gemm*.c"), ext("ops", "csrc/ops_*.c"),
              ext("attention", "csrc/attention*.c"), ext("conv", "csrc/conv*.c", "csrc/gemm*.c"),
              ext("pool", "csrc/pool*.c", "csrc/norm2d*.c"), ext("select", "csrc/select*.c")]
# Developers: FASTNN_ONLY=gemm python setup.py build_ext --inplace --build-temp /tmp/bt_gemm
# rebuilds one module without touching the others.
if os.environ.get("FASTNN_ONLY"):
    extensions = [e for e in extensions if e.name.endswith("_" + os.environ["FASTNN_ONLY"])]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False,
                                                 "cdivision": True, "initializedcheck": False}))
