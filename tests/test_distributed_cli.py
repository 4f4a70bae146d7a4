"""`fastnn train gpt|mlp|cnn --distributed` under `mpiexec -n 2` (fastnn/models/*_cli.py, fit()).

Each test launches `python -m fastnn.cli train ... --distributed` with one thread per rank and
small models, under a timeout, and checks: exit status 0, one progress stream (rank 0's), a
checkpoint that loads in this single process, and that two ranks on half of every batch end
where one process on the whole batch ends (`--distributed` without mpiexec runs as one
process). Failures: a missing --text file and a batch that does not split over the ranks end
the job at once with one line. Skipped, saying why, without mpi4py or mpiexec
(pip install ".[mpi]" brings both). About 40 s in all on a busy 2-core machine.
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from fastnn.models import load_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
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
pytestmark = pytest.mark.skipif(_NO_MPI is not None, reason=str(_NO_MPI))

GPT_SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16",
             "--batch-size", "4", "--eval-interval", "10", "--eval-iters", "4", "--threads", "1"]
MLP_SMALL = ["--hidden", "32", "--dropout", "0", "--batch-size", "64", "--threads", "1",
             "--max-time", "600"]


def fastnn_cli(ranks, *args, timeout=120):
    """`python -m fastnn.cli ARGS`, under `mpiexec -n ranks` when ranks is not None; returns
    (returncode, stdout, stderr, seconds)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", FASTNN_NUM_THREADS="1",
               FASTNN_DIST_TIMEOUT="60", PYTHONPATH=ROOT)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmd = [sys.executable, "-m", "fastnn.cli", *map(str, args)]
    if ranks is not None:
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} did not finish within {timeout} s (a hang): "
                    f"{e.stdout!r} {e.stderr!r}")
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def params(path):
    model, _ = load_checkpoint(path)
    return {k: np.array(v._data if hasattr(v, "_data") else v, copy=True)
            for k, v in model.state_dict().items()}


def max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a if a[k].size)


def test_train_gpt_distributed(tmp_path):
    out2, out1 = tmp_path / "two" / "gpt.npz", tmp_path / "one" / "gpt.npz"
    rc, so, se, _ = fastnn_cli(2, "train", "gpt", "--distributed", "--steps", 20, *GPT_SMALL,
                               "--out", out2)
    assert rc == 0, so + se
    # rank 0 alone prints: one header, one line per evaluation, one progress bar
    assert so.count("GPT: ") == 1 and "2 ranks x 1 threads" in so, so
    assert so.count("step 10: train loss") == 1 and so.count("step 20: train loss") == 1, so
    assert so.count("saved ") == 1, so
    assert se.count("| 0/20 [") == 1, se
    model, meta = load_checkpoint(str(out2), kind="gpt")
    assert meta["train_state"]["step"] == 20
    # one process on the whole batch (--distributed without mpiexec: a note, then one process)
    rc, so1, se1, _ = fastnn_cli(None, "train", "gpt", "--distributed", "--steps", 20,
                                 *GPT_SMALL, "--out", out1, "--no-progress")
    assert rc == 0, so1 + se1
    assert "without an MPI launcher" in se1
    assert max_diff(params(out1), params(out2)) < 1e-4
    # the evaluation is shared out over the ranks, and gives one process's numbers
    ev1 = [ln for ln in so1.splitlines() if ln.startswith("step ")]
    ev2 = [ln for ln in so.splitlines() if ln.startswith("step ")]
    assert [ln.split("(")[0] for ln in ev1] == [ln.split("(")[0] for ln in ev2]


def test_train_mlp_distributed_matches_one_process(tmp_path):
    out2, out1 = tmp_path / "two" / "mlp.npz", tmp_path / "one" / "mlp.npz"
    rc, so, se, _ = fastnn_cli(2, "train", "mlp", "--distributed", "--epochs", 3, *MLP_SMALL,
                               "--out", out2)
    assert rc == 0, so + se
    assert so.count("MLP 64-32-10") == 1 and "2 rank(s)" in so, so
    assert so.count("test accuracy:") == 1 and so.count("saved checkpoint") == 1, so
    assert se.count("| 0/69 [") == 1, se   # 3 epochs x 23 batches of 32 per rank
    rc, so1, se1, _ = fastnn_cli(None, "train", "mlp", "--distributed", "--epochs", 3,
                                 *MLP_SMALL, "--out", out1, "--no-progress")
    assert rc == 0, so1 + se1
    # two ranks on half of every batch end where one process on the whole batch ends
    assert max_diff(params(out1), params(out2)) < 1e-5
    model, meta = load_checkpoint(str(out2), kind="mlp")
    acc = float(meta["test_accuracy"])
    assert acc > 0.5   # it learns: chance is 0.1
    acc_line = [ln for ln in so.splitlines() if ln.startswith("test accuracy")]
    assert acc_line == [ln for ln in so1.splitlines() if ln.startswith("test accuracy")]


def test_train_cnn_distributed(tmp_path):
    out = tmp_path / "cnn.npz"
    rc, so, se, _ = fastnn_cli(2, "train", "cnn", "--distributed", "--epochs", 2, "--channels",
                               8, 16, "--threads", 1, "--max-time", 600, "--out", out)
    assert rc == 0, so + se
    assert so.count("model: CNN") == 1 and "2 rank(s)" in so, so
    assert so.count("test accuracy:") == 1 and so.count("saved checkpoint") == 1, so
    assert se.count("| 0/90 [") == 1, se   # 2 epochs x 45 batches of 16 per rank
    model, meta = load_checkpoint(str(out), kind="cnn")
    # BatchNorm sees each rank's half of a batch: it trains like one process, not exactly as it
    assert float(meta["test_accuracy"]) > 0.5   # chance is 0.1


def test_distributed_failures_end_the_job(tmp_path):
    # a missing text: every rank stops at once; one line, no traceback, no hang
    rc, so, se, secs = fastnn_cli(2, "train", "gpt", "--distributed", "--steps", 5,
                                  *GPT_SMALL, "--text", tmp_path / "missing.txt",
                                  "--out", tmp_path / "gpt.npz", timeout=90)
    assert rc == 2, so + se
    assert se.count("missing.txt") == 1 and "Traceback" not in se, se
    assert not (tmp_path / "gpt.npz").exists()
    # a global batch that does not split over the ranks: the same
    rc, so, se, _ = fastnn_cli(2, "train", "mlp", "--distributed", "--epochs", 1, *MLP_SMALL,
                               "--batch-size", 5, "--out", tmp_path / "mlp.npz", timeout=90)
    assert rc == 2, so + se
    assert se.count("does not split evenly over 2 ranks") == 1 and "Traceback" not in se, se
    # a checkpoint that rank 0 alone cannot write: rank 0 names itself and ends the job
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, so, se, _ = fastnn_cli(2, "train", "gpt", "--distributed", "--steps", 5, *GPT_SMALL,
                               "--out", blocker / "gpt.npz", "--no-progress", timeout=90)
    assert rc != 0, so + se
    assert "rank 0 of 2" in se and "Traceback" not in se, se
