"""fastnn's OpenMP wait policy: idle threads sleep unless the user chose otherwise (issue 16)."""
import os
import subprocess
import sys

import pytest

# After a parallel C GEMM, the CPU time this process burns while it sleeps 0.2 s, in cores.
PROBE = """
import os, time
import numpy as np
import fastnn
from fastnn import kernels as K
fastnn.set_num_threads(2)
a = np.ones((256, 256), np.float32); c = np.empty_like(a)
for _ in range(20):
    K.gemm(a, a, c, backend="cython")
c0, w0 = time.process_time(), time.perf_counter()
time.sleep(0.2)
print(os.environ.get("OMP_WAIT_POLICY"), (time.process_time() - c0) / (time.perf_counter() - w0))
"""


def _probe(**env):
    run_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run_env.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=run_env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    policy, cores = out.stdout.split()
    return policy, float(cores)


@pytest.fixture(scope="module", autouse=True)
def _needs_c_kernels():
    import fastnn
    if "cython" not in fastnn.available_backends():
        pytest.skip("the C kernels are not built")


def test_idle_threads_sleep_by_default():
    policy, cores = _probe()
    assert policy == "passive"
    assert cores < 0.05   # no thread kept spinning after the GEMMs


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: no OpenMP team spins")
def test_the_users_policy_stands():
    # the control: with spinning asked for, the probe does see the worker thread spin
    policy, cores = _probe(OMP_WAIT_POLICY="active")
    assert policy == "active"
    assert cores > 0.05


@pytest.mark.parametrize("users", [None, "passive", "active"])
def test_environment_for_other_libraries_is_as_before_fastnn(users):
    """What PyTorch's bench worker gets: no wait policy unless the user chose one."""
    code = ("import os, fastnn.threads as t\n"
            "print(os.environ['OMP_WAIT_POLICY'],\n"
            "      t.environ_without_fastnn().get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if users:
        env["OMP_WAIT_POLICY"] = users
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    here, theirs = out.stdout.split()
    assert here == (users or "passive")
    assert theirs == str(users)
