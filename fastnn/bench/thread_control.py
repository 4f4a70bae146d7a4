"""One thread count for everything `fastnn bench --threads` compares: fastnn (OpenMP and Numba),
PyTorch and numpy's BLAS (through threadpoolctl, when installed); restored afterwards."""
import sys

from .. import threads
from .machine import load_torch


class ThreadControl:
    """Sets one thread count in fastnn (OpenMP + Numba), PyTorch and numpy's BLAS; restores."""

    def __init__(self, with_torch):
        self.torch = load_torch() if with_torch else None
        self.saved = (threads.get_num_threads(),
                      self.torch.get_num_threads() if self.torch else None)
        self.blas_limit = None

    def set(self, n):
        threads.set_num_threads(n)
        if self.torch:
            self.torch.set_num_threads(n)
        self._release_blas()
        try:
            import threadpoolctl
            self.blas_limit = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        except ImportError:
            print("note: threadpoolctl is not installed; numpy's BLAS keeps its own thread count",
                  file=sys.stderr)

    def _release_blas(self):
        if self.blas_limit is not None:
            self.blas_limit.restore_original_limits()
            self.blas_limit = None

    def restore(self):
        threads.set_num_threads(self.saved[0])
        if self.torch:
            self.torch.set_num_threads(self.saved[1])
        self._release_blas()
