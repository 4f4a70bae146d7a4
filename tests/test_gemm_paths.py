"""The C GEMM (cython backend) on every instruction-set path, against a float64 numpy product.

Each path runs in a subprocess with FASTNN_ISA set: the C code picks its path once, at load.
The block sizes come from the cache sizes (csrc/gemm_driver.h, choose_blocks): each path runs
with small caches pinned by FASTNN_GEMM_L1/L2/L3 (small blocks: many block edges per second of
test), and the CPU's own path once more with the detected caches. Shapes are chosen around the
block sizes the child reads back (_gemm.gemm_blocks) so that every edge
case of the packed loops is hit: partial MR x NR tiles, a KC slice of depth 1, MC and NC blocks
with a remainder, both ways of splitting work between threads, and the skinny (unpacked) path
for m or n <= 8. c sits between guard zones, so a write out of bounds fails the test.
"""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

# Cache sizes (bytes) for the "small" runs: KC 64, MC ~100, NC 256-512 on the AVX paths.
SMALL_CACHES = {"FASTNN_GEMM_L1": "8192", "FASTNN_GEMM_L2": "65536", "FASTNN_GEMM_L3": "262144"}
SKINNY = 8        # GEMM_SKINNY in csrc/gemm_driver.h
GUARD = 64        # elements of sentinel either side of c
MAX_MNK = 2e6     # these two keep the whole file fast
MAX_MN = 2e5


def shapes(blocks):
    """(m, n, k) triples: each interesting size of each dimension at least once."""
    mr, nr, kc, mc, nc = (blocks[x] for x in ("MR", "NR", "KC", "MC", "NC"))
    ms = sorted({1, 2, 3, SKINNY, SKINNY + 1, mr - 1, mr, mr + 1, 2 * mr + 1, 37, mc + 3,
                 2 * mc + 1})
    ns = sorted({1, 5, SKINNY, SKINNY + 1, nr - 1, nr, nr + 1, 3 * nr + 5, 53, nc + 1})
    ks = sorted({1, 2, 13, kc - 1, kc, kc + 1, 2 * kc + 3})
    out = set()
    for i, (m, n) in enumerate(itertools.product(ms, ns)):
        if m * n > MAX_MN:
            continue
        k = ks[i % len(ks)]
        while m * n * k > MAX_MNK and k > 1:
            k = max(1, k // 4)
        out.add((m, n, k))
    for k in ks:                                     # every depth with full and partial tiles
        for m, n in ((mr, nr), (mr + 1, nr + 3), (2 * mr + 5, 2 * nr - 1), (SKINNY - 1, 45),
                     (45, SKINNY - 2)):
            out.add((m, n, k))
    # big enough to be split among threads (GEMM_PARALLEL_MIN_MNK), several KC slices:
    # rows split, columns split across an NC boundary, rows split with thin columns
    out |= {(mc + 3, 3 * nr + 5, kc + 1), (mr + 1, nc + 1, 2 * kc + 3), (2 * mc + 1, nr + 1, kc + 1)}
    return sorted(out)


def check_one(gemm, rng, dtype, m, n, k, ta, tb, alpha, beta):
    """Run one product; return None if it matches the reference, else a description."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    buf = np.full(m * n + 2 * GUARD, 12345.0, dtype)
    c = buf[GUARD:GUARD + m * n].reshape(m, n)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    if beta == 0:
        c[...] = np.nan                              # must not be read
    else:
        c[...] = c0
    opa = (a.T if ta else a).astype(np.float64)
    opb = (b.T if tb else b).astype(np.float64)
    ref = alpha * (opa @ opb) + (beta * c0.astype(np.float64) if beta != 0 else 0)
    scale = abs(alpha) * (np.abs(opa) @ np.abs(opb)) + abs(beta) * np.abs(c0)
    gemm(a, b, c, ta, tb, alpha, beta)
    eps = np.finfo(dtype).eps
    err = np.abs(c.astype(np.float64) - ref)
    bad = ~(err <= 2 * (k + 2) * eps * scale + 1e-30)    # NaN counts as bad
    if bad.any():
        i, j = np.argwhere(bad)[0]
        return f"c[{i},{j}] = {c[i, j]!r}, expected {ref[i, j]!r} ({bad.sum()} wrong)"
    if not (buf[:GUARD] == 12345.0).all() or not (buf[GUARD + m * n:] == 12345.0).all():
        return "wrote outside c"
    return None


def child():
    """Runs in the subprocess: sweep every shape and case on the path FASTNN_ISA selects."""
    from fastnn.backends.cython import _gemm

    rng = np.random.default_rng(1234)
    failures, count = [], 0

    def record(what, msg):
        if msg is not None:
            failures.append(f"{what}: {msg}")

    for threads in (2, 3):                           # 3: odd splits of rows / columns
        _gemm.set_num_threads(threads)
        for dtype in ("float32", "float64"):
            for m, n, k in shapes(_gemm.gemm_blocks(dtype)):
                if threads == 3 and (m * n < 64 or (m + n) % 3) and m * n * k < 1e6:
                    continue                         # a third of the shapes is enough there
                for case, (ta, tb) in enumerate(itertools.product((False, True), repeat=2)):
                    # beta = 0 (c full of NaN) and beta != 0 take turns across shapes
                    alpha, beta = ((1.0, 0.0), (-0.5, 2.0))[(case + m + n + k) % 2]
                    count += 1
                    record(f"{dtype} m={m} n={n} k={k} trans_a={ta} trans_b={tb} "
                           f"alpha={alpha} beta={beta} threads={threads}",
                           check_one(_gemm.gemm, rng, dtype, m, n, k, ta, tb, alpha, beta))
    # gemm_batched: small products (one per thread) and large ones (each threaded)
    _gemm.set_num_threads(2)
    for dtype in ("float32", "float64"):
        for nb, m, n, k in ((5, 3, 4, 5), (4, 13, 35, 17), (3, 40, 70, 300), (2, 150, 130, 90)):
            for ta, tb in itertools.product((False, True), repeat=2):
                count += 1
                a = rng.standard_normal((nb, k, m) if ta else (nb, m, k)).astype(dtype)
                b = rng.standard_normal((nb, n, k) if tb else (nb, k, n)).astype(dtype)
                c = np.full((nb, m, n), np.nan, dtype)
                _gemm.gemm_batched(a, b, c, ta, tb, 2.0, 0.0)
                ref = 2.0 * np.matmul(a.swapaxes(1, 2) if ta else a, b.swapaxes(1, 2) if tb else b,
                                      dtype=np.float64)
                if not np.allclose(c, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k)):
                    failures.append(f"gemm_batched {dtype} {(nb, m, n, k)} trans_a={ta} "
                                    f"trans_b={tb}: max error {np.nanmax(np.abs(c - ref))}")
    print(json.dumps({"path": _gemm.cpu_path(), "count": count, "failures": failures[:20],
                      "n_failures": len(failures)}))


def _detected():
    from fastnn.backends.cython import _gemm
    return _gemm.cpu_detected()


@pytest.mark.parametrize("isa,caches", [("portable", "small"), ("avx2", "small"),
                                        ("avx512", "small"), ("native", "detected")])
def test_gemm_path_matches_numpy(isa, caches):
    order = ["portable", "avx2", "avx512"]
    if isa == "native":
        isa = _detected()
    if order.index(isa) > order.index(_detected()):
        pytest.skip(f"this CPU lacks {isa}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTNN_GEMM_L")}
    env["FASTNN_ISA"] = isa
    if caches == "small":
        env.update(SMALL_CACHES)
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["path"] == isa
    assert result["count"] > 500
    assert result["n_failures"] == 0, "\n".join(result["failures"])


if __name__ == "__main__":
    child()


def test_blocks_follow_the_cache_sizes():
    # KC: an NR-wide sliver of B in half of L1d; MC: MC x KC of A in half of L2; NC: KC x NC of B
    # in half of L3; each rounded down to whole slivers and clamped.
    code = ("import json; from fastnn.backends.cython import _gemm; "
            "print(json.dumps([_gemm.gemm_blocks('float32'), _gemm.gemm_blocks('float64')]))")
    env = dict(os.environ, FASTNN_ISA="avx2", FASTNN_GEMM_L1="32768", FASTNN_GEMM_L2="1048576",
               FASTNN_GEMM_L3="16777216")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    f32, f64 = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (f32["L1"], f32["L2"], f32["L3"]) == (32768, 1048576, 16777216)
    if _detected() == "portable":
        pytest.skip("no AVX2 here: the portable path has other micro-tiles")
    assert (f32["MR"], f32["NR"], f32["KC"], f32["MC"], f32["NC"]) == (6, 16, 256, 510, 8192)
    assert (f64["MR"], f64["NR"], f64["KC"], f64["MC"], f64["NC"]) == (6, 8, 256, 252, 4096)
