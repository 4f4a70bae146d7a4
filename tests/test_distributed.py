"""fastnn.distributed, DistributedDataParallel, DistributedSampler and ZeroRedundancyOptimizer.

The multi-rank tests launch the scripts in tests/mpi_scripts/ with `mpiexec -n 2` (and -n 3
for an odd world size), one thread per rank, each under a timeout; they are skipped, saying
why, when mpi4py or mpiexec is missing (pip install ".[mpi]" brings both). The sampler and the
autograd hook are tested in this process.
"""
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn.utils.data import DistributedSampler

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "mpi_scripts")
ROOT = os.path.dirname(HERE)


def _mpiexec():
    for d in (os.path.dirname(sys.executable), *os.environ.get("PATH", "").split(os.pathsep)):
        p = os.path.join(d, "mpiexec")
        if d and os.access(p, os.X_OK):
            return p
    return shutil.which("mpiexec")


def _why_no_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install '.[mpi]')"
    if _mpiexec() is None:
        return "no mpiexec on PATH or next to the Python executable (pip install mpich)"
    return None


_NO_MPI = _why_no_mpi()
needs_mpi = pytest.mark.skipif(_NO_MPI is not None, reason=str(_NO_MPI))


def run_mpi(n, script, *args, timeout=240, env=None):
    """Run tests/mpi_scripts/<script> on n ranks; (returncode, output, seconds)."""
    e = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", FASTNN_NUM_THREADS="1")
    e["PATH"] = os.path.dirname(sys.executable) + os.pathsep + e.get("PATH", "")
    e.update(env or {})
    cmd = [_mpiexec(), "-n", str(n), sys.executable, os.path.join(SCRIPTS, script),
           *map(str, args)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT)
    except subprocess.TimeoutExpired as ex:
        out = (ex.stdout or b"").decode() if isinstance(ex.stdout, bytes) else (ex.stdout or "")
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout} s (a hang):\n{out}")
    return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def _ok(n, script, *args, timeout=240):
    rc, out, _ = run_mpi(n, script, *args, timeout=timeout)
    assert rc == 0, f"mpiexec -n {n} {script} {args} exited {rc}:\n{out}"
    return out


def _field(out, name):
    m = re.search(rf"{name}=([-+0-9.e]+)", out)
    assert m, f"no {name}= in:\n{out}"
    return float(m.group(1))


# ---------------------------------------------------------------- multi-rank
@needs_mpi
@pytest.mark.parametrize("world", [2, 3])
def test_collectives_match_numpy(world):
    out = _ok(world, "collectives.py")
    assert f"COLLECTIVES OK world={world}" in out, out


@needs_mpi
@pytest.mark.parametrize("dtype,opt,world", [
    ("float64", "sgd", 2), ("float64", "adamw", 2), ("float32", "sgd", 2),
    ("float32", "adamw", 2), ("float64", "adamw", 3)])
def test_ddp_equals_one_process_on_the_whole_batch(dtype, opt, world):
    out = _ok(world, "equivalence.py", dtype, opt, 20)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert _field(out, "full_batch_diff") <= tol, out
    assert _field(out, "moved") > 1e-3, out          # the parameters did train
    if world == 2:  # (g0 + g1) / 2 is what one process computes from two half-batches, exactly
        assert _field(out, "microbatch_diff") == 0.0, out


@needs_mpi
@pytest.mark.parametrize("world", [2, 3])
def test_ddp_no_sync_unused_parameters_tied_weights(world):
    out = _ok(world, "ddp_features.py")
    assert f"DDP-FEATURES OK world={world}" in out, out
    assert "never.weight" in out and "find_unused_parameters=True" in out


@needs_mpi
@pytest.mark.parametrize("world", [2, 3])
def test_zero_redundancy_optimizer_equals_adamw(world):
    out = _ok(world, "zero.py", 10)
    assert _field(out, "max_abs_diff") <= 1e-12, out
    assert _field(out, "resumed_diff") <= 1e-12, out


@needs_mpi
@pytest.mark.parametrize("opt", ["adamw", "sgd"])
def test_checkpoint_from_distributed_run_resumes_in_one_process(tmp_path, opt):
    _ok(2, "checkpoint.py", tmp_path, 5, 5, opt)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # atomic saves
    p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "resume.py"), str(tmp_path),
                        "5", "5", opt, "2"], capture_output=True, text=True, timeout=240, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert _field(out, "resumed_vs_uninterrupted") == 0.0, out   # bit-exact
    assert _field(out, "resumed_vs_distributed") == 0.0, out
    assert _field(out, "fullbatch_vs_distributed") <= 1e-12, out


@needs_mpi
@pytest.mark.parametrize("mode,world", [("exit", 2), ("sigkill", 2), ("raise", 2),
                                        ("sigkill", 3)])
def test_a_dying_rank_ends_the_job_and_is_named(mode, world):
    rc, out, secs = run_mpi(world, "failure.py", mode, timeout=120,
                            env={"FASTNN_DIST_TIMEOUT": "60"})
    assert rc != 0, out
    assert secs < 60, f"took {secs:.0f} s:\n{out}"
    assert "finished, which it should not have" not in out
    assert re.search(rf"fastnn\.distributed: rank 1 of {world} .*(died|failed)", out), out
    assert not re.search(r"fastnn\.distributed: rank [02] of .*died", out), out  # only rank 1


@needs_mpi
def test_a_hanging_rank_times_out():
    rc, out, secs = run_mpi(2, "failure.py", "hang", timeout=120,
                            env={"FASTNN_DIST_TIMEOUT": "3"})
    assert rc != 0, out
    assert secs < 60, f"took {secs:.0f} s:\n{out}"
    assert "did not complete within 3 s (FASTNN_DIST_TIMEOUT)" in out, out
    assert re.search(r"rank 0 of 2 .*aborting|aborting all 2 ranks", out, re.S), out


@needs_mpi
def test_gpt_training_template_for_the_cli(tmp_path):
    out = _ok(2, "train_gpt.py", tmp_path, 12)
    assert "TRAIN-GPT OK world=2" in out, out
    assert out.count("step 0:") == 1, out        # only rank 0 prints
    sd = fastnn.load(tmp_path / "gpt.npz")
    assert "lm_head.weight" in sd or "transformer.wte.weight" in sd


# ---------------------------------------------------------------- in this process
def test_shard_helper():
    import fastnn.distributed as dist
    x = np.arange(24).reshape(6, 4)
    assert np.array_equal(dist.shard(x, rank=2, world_size=3), x[4:6])
    assert np.array_equal(dist.shard(x, dim=1, rank=1, world_size=2), x[:, 2:])
    assert np.array_equal(dist.shard(fastnn.tensor(x))._data, x)   # no process group: all
    with pytest.raises(ValueError, match="evenly"):
        dist.shard(x, rank=0, world_size=4)


def test_not_initialized_errors():
    import fastnn.distributed as dist
    from fastnn.nn.parallel import DistributedDataParallel
    assert not dist.is_initialized()
    assert dist.is_main_process()
    with pytest.raises(RuntimeError, match="has not been initialized"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedDataParallel(fastnn.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="backend"):
        dist.init_process_group("nccl")
    with pytest.raises(RuntimeError, match="num_replicas and rank"):
        DistributedSampler(range(4))


def test_post_accumulate_grad_hook_fires_once_after_all_uses():
    w = fastnn.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    x = fastnn.tensor(np.array([1.0, 1.0, 2.0]))
    seen = []
    h = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.clone()))
    ((w * x).sum() + (w * w).sum()).backward()  # two uses: one call, with the whole gradient
    assert len(seen) == 1 and np.array_equal(seen[0], x._data + 2 * w._data)
    w.sum().backward()
    assert len(seen) == 2
    h.remove()
    w.sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="doesn't require"):
        fastnn.tensor([1.0]).register_post_accumulate_grad_hook(print)


CASES = [(n, r, sh, dl) for n in (0, 1, 5, 10, 11, 17, 100) for r in (1, 2, 3, 4)
         for sh in (False, True) for dl in (False, True)]


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


@pytest.mark.parametrize("n,replicas,shuffle,drop_last", CASES)
def test_distributed_sampler_semantics(n, replicas, shuffle, drop_last):
    per_rank = [list(DistributedSampler(range(n), replicas, r, shuffle, 3, drop_last))
                for r in range(replicas)]
    lengths = {len(p) for p in per_rank}
    assert len(lengths) == 1                               # every rank gets as many
    k = lengths.pop()
    assert k == len(DistributedSampler(range(n), replicas, 0, shuffle, 3, drop_last))
    got = [i for p in per_rank for i in p]
    if drop_last:
        assert k == n // replicas and len(set(got)) == len(got)   # no index twice
    elif n:
        assert k == -(-n // replicas) and set(got) == set(range(n))  # all, padded by repeats
    if not shuffle:  # PyTorch's order without shuffling: rank r takes r, r + R, ...
        order = list(range(n)) + list(range(n)) * (replicas + 1)
        for r in range(replicas):
            assert per_rank[r] == order[r:k * replicas:replicas]


@pytest.mark.parametrize("n,replicas,shuffle,drop_last", CASES)
def test_distributed_sampler_matches_pytorch(n, replicas, shuffle, drop_last):
    torch = _torch()
    if torch is None:
        pytest.skip("torch is not installed: nothing to compare with")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    for rank in range(replicas):
        for epoch in (0, 5):
            ours = DistributedSampler(range(n), replicas, rank, shuffle, 11, drop_last,
                                      permutation="torch")
            theirs = TorchSampler(range(n), replicas, rank, shuffle, 11, drop_last)
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)
            default = DistributedSampler(range(n), replicas, rank, shuffle, 11, drop_last)
            default.set_epoch(epoch)
            assert list(default) == list(theirs)      # the default order is PyTorch's


def test_distributed_sampler_in_a_dataloader():
    from fastnn.utils.data import DataLoader, Sampler, TensorDataset
    ds = TensorDataset(fastnn.tensor(np.arange(10.0)))
    seen = []
    for r in range(3):
        s = DistributedSampler(ds, num_replicas=3, rank=r, shuffle=True, seed=4)
        assert isinstance(s, Sampler)
        for (xb,) in DataLoader(ds, batch_size=2, sampler=s):
            seen += xb.tolist()
    assert len(seen) == 12 and set(seen) == set(range(10))    # 10 samples padded to 3 x 4


def test_distributed_sampler_epochs_and_errors():
    s = DistributedSampler(range(20), 2, 0, shuffle=True, seed=1)
    e0 = list(s)
    assert list(s) == e0                          # same epoch, same order
    s.set_epoch(1)
    assert list(s) != e0
    other = DistributedSampler(range(20), 2, 1, shuffle=True, seed=1)
    other.set_epoch(1)
    assert sorted(list(s) + list(other)) == list(range(20))
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="permutation"):
        DistributedSampler(range(4), 2, 0, permutation="jax")
