"""How fastnn's OpenMP threads wait and how many run (issue 16): idle threads spin briefly, then
sleep, unless the user chose otherwise; the C kernels use fewer threads while other processes
keep cores busy (csrc/cpu.c)."""
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


FASTNN_CHOICES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")   # set by `import fastnn` (threads.py)


def _probe(**env):
    run_env = {k: v for k, v in os.environ.items() if k not in FASTNN_CHOICES}
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
    assert cores < 0.05   # the worker spun ~0.3 ms at most after the GEMMs (GOMP_SPINCOUNT)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: no OpenMP team spins")
def test_the_users_policy_stands():
    # the control: with spinning asked for, the probe does see the worker thread spin
    policy, cores = _probe(OMP_WAIT_POLICY="active")
    assert policy == "active"
    assert cores > 0.05


def _as_set_and_as_passed_on(variable, users):
    """In a fresh process whose environment sets `variable` to `users` (None: unset), after
    `import fastnn`: its value there, and in the environment fastnn hands to other libraries."""
    code = ("import os, sys, fastnn.threads as t\n"
            "print(os.environ[sys.argv[1]], t.environ_without_fastnn().get(sys.argv[1]))")
    env = {k: v for k, v in os.environ.items() if k not in FASTNN_CHOICES}
    if users:
        env[variable] = users
    out = subprocess.run([sys.executable, "-c", code, variable], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.parametrize("users", [None, "passive", "active"])
def test_environment_for_other_libraries_is_as_before_fastnn(users):
    """What PyTorch's bench worker gets: no wait policy unless the user chose one."""
    here, theirs = _as_set_and_as_passed_on("OMP_WAIT_POLICY", users)
    assert here == (users or "passive")
    assert theirs == str(users)


@pytest.mark.parametrize("users", [None, "1000"])
def test_spin_count_is_fastnns_unless_the_user_set_one(users):
    here, theirs = _as_set_and_as_passed_on("GOMP_SPINCOUNT", users)
    assert here == (users or "10000")
    assert theirs == str(users)      # PyTorch's bench worker gets the user's, or its own default


# The adaptive thread count, in a subprocess with adaptation on (this suite turns it off, so
# thread-split tests stay deterministic on a loaded machine): a busy process per core, then the C kernels' effective count must fall below the count set, and come back
# after reset_load(); with adaptation off it never falls.
ADAPT = """
import os, subprocess, sys, time
import numpy as np
import fastnn
from fastnn import threads
from fastnn.backends.cython import _gemm
on = sys.argv[1] == "on"
threads.set_adaptive(on)
fastnn.set_num_threads(2)
a = np.ones((128, 128), np.float32); c = np.empty_like(a)
busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(min(len(os.sched_getaffinity(0)), 16))]   # every core busy
try:
    time.sleep(0.3)
    seen = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.5:
        _gemm.gemm(a, a, c, False, False, 1.0, 0.0)
        seen.append(_gemm.effective_threads())
        time.sleep(0.005)
    print(min(seen), round(_gemm.others_load(), 2))
finally:
    for p in busy:
        p.kill()
threads.reset_load()
print(threads.effective_threads(), threads.get_num_threads())
"""


@pytest.mark.skipif(not 2 <= len(os.sched_getaffinity(0)) <= 16
                    or not sys.platform.startswith("linux"),
                    reason="needs 2-16 cores and /proc/stat")
@pytest.mark.parametrize("on", ["on", "off"])
def test_threads_adapt_to_load(on):
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_ADAPT_THREADS"}
    out = subprocess.run([sys.executable, "-c", ADAPT, on], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    (least, others), (after_reset, set_count) = [line.split() for line in out.stdout.splitlines()]
    assert set_count == "2" and after_reset == "2"
    if on == "on":
        assert float(others) > 0.5, "the busy processes were not seen"
        assert int(least) == 1
    else:
        assert int(least) == 2


def test_adaptive_switch():
    from fastnn import threads
    from fastnn.backends import cython
    was = cython.get_adaptive()
    try:
        threads.set_adaptive(False)
        assert cython.get_adaptive() is False
        assert threads.effective_threads() == cython.get_num_threads()
        threads.set_adaptive(True)
        assert cython.get_adaptive() is True
    finally:
        threads.set_adaptive(was)


def test_bad_adaptive_switches_are_refused():
    from fastnn import threads
    with pytest.raises(TypeError, match="set_adaptive: on must be True or False"):
        threads.set_adaptive("no")
    env = dict(os.environ, FASTNN_ADAPT_THREADS="off")
    out = subprocess.run([sys.executable, "-c", "import fastnn, fastnn.threads as t\n"
                          "print(t.effective_threads() >= 1)"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]   # the import goes on, with the default
    assert "FASTNN_ADAPT_THREADS='off' ignored: use 0" in out.stderr
    assert out.stdout.split() == ["True"]

