"""`fastnn bench` and the bench/ suite: structure, never speed (timings on a shared machine
vary)."""
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import bench
from fastnn.bench import contention, memory, report, timing, train_cases
from fastnn.kernels import dispatch as backends
from fastnn.kernels.registry import REGISTRY, Bench

CPU_BACKENDS = [b for b in fastnn.available_backends() if b != "cuda"]
STATUSES = {"ok", "n/a", "error", "mismatch"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run of every kernel family, with --json and --plot (shared by the checks below)."""
    out = tmp_path_factory.mktemp("bench")
    json_path, png_path = out / "bench.json", out / "bench.png"
    rc = bench.main(["--sizes", "tiny", "--repeat", "1", "--threads", "1",
                          "--json", str(json_path), "--plot", str(png_path)])
    assert rc == 0
    return json.loads(json_path.read_text()), png_path


def test_json_has_a_row_per_case_and_implementation(tiny_run):
    doc, _ = tiny_run
    rows = doc["rows"]
    assert {r["family"] for r in rows} == set(bench.family_names())
    expected_impls = set(CPU_BACKENDS) | {"numpy"}
    if bench.torch_available():
        expected_impls.add("torch")
    for case_id in {r["case_id"] for r in rows}:
        impls = {r["impl"] for r in rows if r["case_id"] == case_id}
        want = expected_impls | ({"openblas"} if case_id.startswith("gemm-") else set())
        assert impls == want, case_id
    assert doc["machine"]["numpy_blas"]["library"]
    assert doc["machine"]["cpus_usable"] >= 1


def test_every_kernel_a_backend_has_is_timed_and_others_are_na(tiny_run):
    doc, _ = tiny_run
    for r in doc["rows"]:
        assert r["status"] in STATUSES, r
        if r["impl"] in backends._MODULES:
            has_all = all(backends.load(r["impl"]).has(k) for k in r["kernels"])
            # a kernel the backend has must run and agree with naive numpy; one it lacks is n/a
            assert r["status"] == ("ok" if has_all else "n/a"), (r["impl"], r["case"], r["note"])
        if r["status"] == "n/a":
            assert r["time_s"] is None and r["samples_s"] == []
        else:
            assert r["status"] == "ok", (r["impl"], r["case"], r["note"])
            assert r["time_s"] > 0 and r["min_s"] > 0 and all(t > 0 for t in r["samples_s"])
            assert r["calls_per_turn"] >= 1 and r["first_call_s"] > 0
            assert r["speedup_vs_numpy"] > 0
            if r["family"] in ("gemm", "attention"):
                assert r["gflops"] > 0
            if r["family"] == "gemm":
                assert r["pct_of_openblas"] > 0
        if r["impl"] == "numpy":
            assert r["speedup_vs_numpy"] == pytest.approx(1.0)


def test_plot_is_a_png(tiny_run):
    _, png = tiny_run
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_tables_and_header_are_printed(capsys):
    assert bench.main(["--sizes", "tiny", "--repeat", "1", "--kernels", "gemm,overhead",
                            "--threads", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "numpy's BLAS" in out and "threads" in out
    assert "gemm: GEMM" in out and "overhead: per-call overhead" in out
    assert "gelu:" not in out  # filtered out by --kernels
    for label in ["naive numpy", "OpenBLAS"] + [b for b in CPU_BACKENDS if b != "numpy"]:
        assert label in out
    for metric in ("time", "speedup", "GFLOP/s", "% BLAS"):
        assert metric in out
    assert "=== 1 thread(s) ===" in out and "=== 2 thread(s) ===" in out
    assert "thread scaling" in out


def test_thread_counts_are_restored():
    before = fastnn.get_num_threads()
    bench.main(["--sizes", "tiny", "--repeat", "1", "--kernels", "relu", "--threads", "1"])
    assert fastnn.get_num_threads() == before


@pytest.mark.parametrize("argv", [["--kernels", "gemm,nope"], ["--backends", "blas"],
                                  ["--threads", "two"], ["--threads", "0"], ["--repeat", "0"],
                                  ["--train", "mlp,nope"], ["--contention", "0"]])
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--sizes", "tiny"] + argv)
    assert e.value.code == 2


# ---------------------------------------------------------------- measure() on made-up cases
def _case(outputs, raising=None):
    """A case whose implementations return given arrays (or raise), to test the bookkeeping."""
    def build(impl):
        if impl in (raising or {}):
            def fail():
                raise raising[impl]
            return fail
        return lambda: outputs[impl]
    return bench.Case("relu", "made-up", ("relu",), build)


def test_measure_flags_wrong_missing_and_failing_implementations():
    ref = np.linspace(-1, 1, 50).astype(np.float32)
    case = _case({"numpy": ref, "good": ref + 1e-7, "wrong": ref * 2, "shape": ref[:10]},
                 raising={"missing": NotImplementedError("lacks relu"),
                          "broken": ValueError("boom")})
    impls = ["numpy", "good", "wrong", "shape", "missing", "broken"]
    res = bench.measure(case, impls, repeat=2, target_s=1e-4, settle_s=0)
    status = {impl: r.status for impl, r in res.items()}
    assert status == {"numpy": "ok", "good": "ok", "wrong": "mismatch", "shape": "mismatch",
                      "missing": "n/a", "broken": "error"}
    assert "boom" in res["broken"].note
    for impl in ("numpy", "good", "wrong", "shape"):
        assert len(res[impl].samples) == 2 and res[impl].time() > 0
    assert res["missing"].time() is None

    table = bench.format_family("relu", [(case, res)], "median")
    assert "n/a" in table and "error" in table
    assert "!" in table and "differs from naive numpy" in table


def test_nan_output_is_a_mismatch():
    ref = np.ones(4)
    case = _case({"numpy": ref, "nan": np.full(4, np.nan)})
    res = bench.measure(case, ["numpy", "nan"], repeat=1, target_s=1e-4, settle_s=0)
    assert res["nan"].status == "mismatch"


def test_blas_column_is_checked_against_openblas_alone():
    case = bench.Case("gemm", "1024x1024x1024 NN", ("gemm",), None, blas_check=True)
    slow = bench.Result("openblas", samples=[0.02] * 3, lone_samples=[0.01] * 3)
    fine = bench.Result("openblas", samples=[0.012] * 3, lone_samples=[0.01] * 3)
    numpy = bench.Result("numpy", samples=[0.1])
    table = bench.format_family("gemm", [(case, {"numpy": numpy, "openblas": slow})],
                                     "median")
    assert "note: OpenBLAS on 1024x1024x1024 NN" in table and "(2.00x)" in table
    table = bench.format_family("gemm", [(case, {"numpy": numpy, "openblas": fine})],
                                     "median")
    assert "note:" not in table


def test_blas_check_times_openblas_alone():
    case = next(c for c in bench.cases("gemm", "tiny") if c.blas_check)
    res = bench.measure(case, ["numpy", "openblas"], repeat=1, target_s=1e-4, settle_s=0)
    assert len(res["openblas"].lone_samples) >= 1 and res["openblas"].lone_time() > 0
    assert res["numpy"].lone_samples == []


def test_blas_check_line_says_when_the_column_agrees():
    case = bench.Case("gemm", "1024x1024x1024 NN", ("gemm",), None, blas_check=True)
    fine = bench.Result("openblas", samples=[0.011] * 3, lone_samples=[0.01] * 3)
    table = bench.format_family("gemm", [(case, {"openblas": fine})], "median")
    assert "check: OpenBLAS on 1024x1024x1024 NN" in table and "(1.10x" in table


def test_wait_idle_sees_a_busy_thread_of_this_process():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass
    t = threading.Thread(target=spin)
    t.start()
    try:
        assert timing.wait_idle(max_s=0.05, busy=0.02) is False
    finally:
        stop.set()
        t.join()
    assert timing.wait_idle(max_s=1.0) is True


# ---------------------------------------------------------------- --train, --memory, --contention
def test_train_section_runs_each_step_with_mfu_and_memory(tmp_path, capsys):
    path = tmp_path / "train.json"
    assert bench.main(["--sizes", "tiny", "--repeat", "1", "--threads", "1", "--train",
                       "--memory", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "train: one training step" in out and "GEMM peak of" in out
    for line in ("ms/step", "/PyTorch", "MFU", "worst", "mem trace", "mem RSS"):
        assert line in out
    assert "gemm:" not in out   # --train alone skips the kernel tables
    assert "on fastnn " in out and "of the first step's" in out   # the GPT steady-state check
    if bench.torch_available():
        assert "PyTorch in a worker process with its own defaults" in out
    rows = json.loads(path.read_text())["train"]
    impls = {fastnn.get_backend().name} | ({"torch"} if bench.torch_available() else set())
    for name in train_cases.TRAIN_NAMES:
        got = {r["impl"]: r for r in rows if r["case"] == name}
        assert set(got) == impls, name
        for r in got.values():
            assert r["status"] == "ok", r["note"]
            assert r["time_s"] > 0 and r["flops"] > 0 and 0 < r["mfu"] < 1.5
            assert r["mem_rss_bytes"] is not None
        assert got[fastnn.get_backend().name]["mem_traced_bytes"] > 0


def test_pytorch_steps_run_in_a_worker_with_pytorchs_own_wait_policy():
    """import fastnn sets OMP_WAIT_POLICY=passive; PyTorch's side of --train must not inherit
    it (issue 16): its worker starts from the environment as it was before fastnn's import."""
    pytest.importorskip("torch")
    from fastnn import threads
    from fastnn.bench.worker import RemoteSteps
    steps = RemoteSteps("mlp-small", "tiny", n_threads=1)
    try:
        seen = steps.describe()
        assert seen["pid"] != os.getpid()
        assert seen["omp_wait_policy"] == threads.USER_WAIT_POLICY   # None unless a user set it
        assert seen["torch_threads"] == 1
        assert steps.start(0.001) > 0 and steps.number >= 2
        samples, busy = steps.turn(0.0)
        assert len(samples) == steps.number and all(t > 0 for t in samples)
        assert busy is False
        assert steps.memory(0.0)[0] is None
    finally:
        steps.close()
    assert steps.proc.poll() is not None   # closed: the worker ended


def test_a_failing_worker_is_reported():
    pytest.importorskip("torch")
    from fastnn.bench.worker import RemoteSteps, WorkerError
    with pytest.raises(WorkerError, match="unknown training step"):
        RemoteSteps("nope", "tiny")
    def killed():
        steps = RemoteSteps("mlp-small", "tiny")
        steps.proc.kill()
        steps.proc.wait()
        return steps
    with pytest.raises(WorkerError, match="worker process ended"):
        killed().start(0.001)
    # measure_steps reports it in the table instead of failing the bench
    res = timing.measure_steps({"torch": killed}, 1, 0.001, 0.0)
    assert res["torch"].status == "error" and "ended" in res["torch"].note


def test_worker_ends_with_a_killed_bench():
    """A bench ended by SIGTERM runs no cleanup: PyTorch's worker must see its stdin close."""
    pytest.importorskip("torch")
    code = ("from fastnn.bench.worker import RemoteSteps\nimport time\n"
            "s = RemoteSteps('mlp-small', 'tiny')\nprint(s.proc.pid, flush=True)\ntime.sleep(60)\n")
    bench_proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    worker_pid = int(bench_proc.stdout.readline())
    bench_proc.terminate()
    bench_proc.wait()
    for _ in range(100):   # up to 10 s on a loaded machine
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker_pid, 9)
    pytest.fail("the worker outlived its bench")


def test_train_flops_follow_the_models():
    assert train_cases.mlp_flops((784, 512, 512, 10), 256) == 6 * 256 * (
        784 * 512 + 512 * 512 + 512 * 10)
    # nanoGPT's CPU config: 0.80M parameters without wpe; (6N + 12 L T C) per token
    cfg = train_cases.GPT_CONFIG
    n = train_cases.gpt_flops(cfg, 1) / cfg["block_size"]
    assert n == pytest.approx(6 * 0.80e6 + 12 * 4 * 64 * 128, rel=0.01)


def test_memory_peak_sees_numpy_allocations():
    traced, rss = memory.peak_extra(lambda: np.ones(1 << 20))    # 8 MiB, freed at once
    assert 8 << 20 <= traced < 9 << 20
    buf = np.empty(1 << 20)
    traced, _ = memory.peak_extra(lambda: np.multiply(buf, 2, out=buf))
    assert traced < 1 << 16


def test_steady_state_tells_reuse_from_fresh_allocations():
    buf = np.zeros(1 << 18)
    reusing = memory.steady_state(lambda: np.add(buf, 1, out=buf))
    fresh = memory.steady_state(lambda: np.ones(1 << 18) + 1)
    assert reusing["later_peak"] < 1 << 14
    assert fresh["later_peak"] >= 2 << 20
    text = report.format_steady_state("x", fresh)
    assert "allocates anew" in text


def test_memory_lines_in_kernel_tables(capsys):
    assert bench.main(["--sizes", "tiny", "--repeat", "1", "--kernels", "relu", "--backends",
                       "numpy", "--memory", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "mem trace" in out and "mem RSS" in out and "tracemalloc" in out


def test_contention_prints_quiet_and_contended(capsys):
    assert bench.main(["--sizes", "tiny", "--repeat", "1", "--threads", "1", "--kernels", "relu",
                       "--backends", "numpy", "--no-torch", "--contention"]) == 0
    out = capsys.readouterr().out
    assert "contention: 1 busy process(es)" in out
    for line in ("quiet", "contended", "slowdown", "worst/q"):
        assert line in out


def test_busy_processes_are_killed_even_on_error(monkeypatch):
    with pytest.raises(RuntimeError):
        with contention.busy_processes(1) as procs:
            assert procs[0].poll() is None   # running
            raise RuntimeError("boom")
    assert procs[0].poll() is not None
    # and through `fastnn bench --contention`, when timing fails under load
    started = []
    real = contention.busy_processes

    @contextlib.contextmanager
    def recording(n):
        with real(n) as ps:
            started.extend(ps)
            yield ps

    calls = []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 2:   # the contended phase
            raise RuntimeError("timing failed")
        return {}
    monkeypatch.setattr(contention, "busy_processes", recording)
    monkeypatch.setattr(contention, "measure_steps", failing)
    with pytest.raises(RuntimeError, match="timing failed"):
        bench.main(["--sizes", "tiny", "--repeat", "1", "--kernels", "relu", "--backends",
                    "numpy", "--no-torch", "--contention"])
    assert started and all(p.poll() is not None for p in started)


def test_busy_process_ends_with_a_killed_bench():
    """A bench ended by SIGTERM runs no cleanup: its busy loop must notice and end itself."""
    code = ("from fastnn.bench.contention import busy_processes\nimport time\n"
            "with busy_processes(1) as ps:\n    print(ps[0].pid, flush=True)\n    time.sleep(60)\n")
    bench_proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    busy_pid = int(bench_proc.stdout.readline())
    bench_proc.terminate()
    bench_proc.wait()
    for _ in range(100):   # up to 10 s on a loaded machine
        try:
            os.kill(busy_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(busy_pid, 9)
    pytest.fail("the busy loop outlived the bench that started it")


# ---------------------------------------------------------------- families from the registry
def test_families_derive_from_the_registry():
    names = bench.family_names()
    assert names[-1] == "overhead"
    declared = [k for k in REGISTRY.values() if k.bench is not None]
    expected = [k.name if k.bench.kind == "unary" else k.bench.kind for k in declared]
    assert list(names[:-1]) == expected
    assert {"gemm", "gelu", "relu", "softmax", "cross_entropy", "layer_norm", "embedding",
            "adamw", "attention", "overhead"} <= set(names)


def test_a_new_unary_kernel_is_benchmarked_without_edits(monkeypatch):
    """Declaring a kernel with bench=Bench("unary", ...) is all it takes: here a stand-in kernel
    named tanh2 (tanh's functions; its backward takes the forward output y)."""
    tanh = REGISTRY["tanh"]
    fake = dataclasses.replace(tanh, name="tanh2",
                               bench=Bench("unary", dict(backward="tanh_backward", torch="tanh")))
    monkeypatch.setitem(REGISTRY, "tanh2", fake)
    assert "tanh2" in bench.family_names()
    (case,) = bench.cases("tanh2", "tiny")
    assert case.family == "tanh2" and case.label == "n=4K fwd+bwd"
    assert case.kernels == ("tanh2", "tanh_backward")
    impls = ["numpy"] + [b for b in CPU_BACKENDS if b != "numpy"]
    if bench.torch_available():
        impls.append("torch")
    res = bench.measure(case, impls, repeat=1, target_s=1e-4, settle_s=0)
    assert {i: r.status for i, r in res.items()} == {i: "ok" for i in impls}
    table = bench.format_family("tanh2", [(case, res)], "median")
    assert table.startswith("tanh2: tanh2 forward + backward, elementwise")
    if "torch" in impls:
        assert "PyTorch: F.tanh + autograd backward" in table


def test_an_unknown_bench_kind_is_an_error(monkeypatch):
    fake = dataclasses.replace(REGISTRY["tanh"], name="tanh3", bench=Bench("no-such-kind"))
    monkeypatch.setitem(REGISTRY, "tanh3", fake)
    with pytest.raises(ValueError, match="no-such-kind"):
        bench.family_names()


# ---------------------------------------------------------------- the pytest-benchmark suite
BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.skipif(not BENCH_DIR.is_dir(), reason="bench/ is not in this checkout")
def test_bench_suite_collects_and_runs_every_family():
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(BENCH_DIR), "--benchmark-disable", "--fastnn-sizes",
         "tiny", "-v", "-p", "no:cacheprovider"],
        cwd=BENCH_DIR.parent, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for family in bench.family_names():  # each family ran naive numpy at least
        assert f"::test_{family}[{family}-" in proc.stdout and "-numpy] PASSED" in proc.stdout, \
            family
