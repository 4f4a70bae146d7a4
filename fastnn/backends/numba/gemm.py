"""Numba kernels: gemm family (see fastnn/backends/reference.py for the math).

GEMM in the BLIS layout, written as plain loops (no np.dot, no BLAS):

    for each k-group (a few KC steps whose packed panels fit a fixed buffer):
        pack op(a)[:, group] into MR-row panels and op(b)[group, :] into NR-column panels,
            one panel per work item                                     (parallel)
        for each C tile of MC x NC                                      (parallel)
            for each KC step of the group:
                for each NR panel of B (its KC x NR panel stays in L1):
                    for each MR panel of A (the tile's A block stays in L2):
                        micro-kernel: an MR x NR block of C accumulated in registers over KC

Small products (< SERIAL_FLOPS) run the same loops on the calling thread; on several threads,
products with a not transposed and c contiguous split c's rows, one serial GEMM per thread
(_gemm_row_blocks), and the others run the parallel loops above; gemm_batched runs many small
products in parallel over the batch instead. The micro-kernel is loaded before any driver
(_load_micro_kernel: which compiled copy of it the drivers call depends on that).

Transposes are absorbed by the packing, alpha and beta by the micro-kernel's write-back (beta
only on the first KC step; beta == 0 never reads c). Edge panels are zero-padded when packed, so
the micro-kernel always runs a full MR x NR tile and only its store is clipped.

Two numba details make the micro-kernel fast (see _kernel_setup and _register_tile):
- the MR x NR accumulator lives in a stack array, which LLVM promotes to registers (a numpy
  array would be a heap allocation LLVM cannot reason about);
- LLVM's tuning for recent Intel CPUs caps auto-vectorization at 256-bit vectors; the
  micro-kernel's function asks for 512-bit vectors, twice the FMA throughput where AVX-512
  exists (no effect elsewhere);
- the tile is sized to the vector registers (NR_BYTES): MR x NR accumulators that do not fit
  the register file are spilled to the stack around every FMA.
"""
import numba
import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic


def _vector_bytes():
    """Bytes of the widest vector register of the CPU numba compiles for: 64 with AVX-512, else
    32. NUMBA_CPU_NAME (a portable cache, e.g. 'generic') is not the host: assume 32."""
    if numba.config.CPU_NAME:
        return 32
    from llvmlite import binding
    return 64 if binding.get_host_cpu_features().get("avx512f") else 32


MR = 4              # rows of the register tile (spelled out as a0..a3 in _tile_update)
# Columns of the register tile: two vectors (32 float32 with AVX-512, 16 with AVX2). The tile
# must fit the register file beside one B row and the broadcasts of A: LLVM loads all MR
# broadcasts at once and unrolls the k loop by two, so on AVX2's 16 ymm registers 6 x 16 (the C
# kernel's tile) spilled ~30 stack loads/stores per 12 FMAs, and the 512-bit-wide 6 x 32 spilled
# around every FMA (a third of the C kernel's speed). 4 x 16 leaves 2 spills per 16 FMAs.
NR_BYTES = 2 * _vector_bytes()
KC = 256            # reduction depth per packed panel: a KC x NR panel of B is 16-32 KiB (L1)
MC_PANELS = 24      # a parallel C tile is MC_PANELS*MR = 96 rows ...
NC_PANELS = 1024 // NR_BYTES   # ... by NC_PANELS*NR columns (256 float32): in L2
SERIAL_FLOPS = 2 * 96 ** 3   # below this many flops a GEMM runs on the calling thread


# ---------------------------------------------------------------- compile-time helpers
@intrinsic
def _kernel_setup(typingctx):
    """Mark the calling function noinline and prefer 512-bit vectors.

    noinline keeps the attribute meaningful: once inlined into a caller, the caller's (256-bit)
    preference would apply. If llvmlite's internals ever change, fall back to the default width.
    """
    def codegen(context, builder, sig, args):
        attrs = builder.function.attributes
        attrs.add("noinline")
        try:
            set.add(attrs, '"prefer-vector-width"="512"')
        except TypeError:
            pass
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _panel_width(typingctx, x):
    """NR for x's dtype as an LLVM constant, so the micro-kernel's column loop has a fixed trip
    count (x.itemsize is only known at run time in numba)."""
    nr = NR_BYTES // x.dtype.bitwidth * 8

    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), nr)
    return types.int64(x), codegen


@intrinsic
def _register_tile(typingctx, x):
    """Pointer to an MR x NR scratch tile of x's dtype on the stack (in the entry block, where
    LLVM's SROA/LICM turn it into registers)."""
    dt = x.dtype
    size = MR * (NR_BYTES // dt.bitwidth * 8)

    def codegen(context, builder, sig, args):
        elt = context.get_value_type(dt)
        tile = cgutils.alloca_once(builder, ir.ArrayType(elt, size))
        return builder.bitcast(tile, elt.as_pointer())
    return types.CPointer(dt)(x), codegen


# ---------------------------------------------------------------- packing
@njit(cache=True, error_model="numpy")
def _aligned_empty(n, dtype_of):
    """An uninitialized 1-D buffer of n elements of dtype_of's dtype, starting on a 64-byte
    boundary, so that the micro-kernel's vector loads of the packed panels never straddle two
    cache lines (np.empty guarantees only malloc's 16 bytes)."""
    buf = np.empty(n + 64, dtype_of.dtype)
    skip = (-buf.ctypes.data) % 64 // buf.itemsize
    return buf[skip:skip + n]


@njit(cache=True, error_model="numpy")
def _pack_a_panel(a, trans_a, row0, k0, kc, m, dst):
    """dst[p*MR + i] = op(a)[row0 + i, k0 + p], zero for rows past m."""
    rows = min(MR, m - row0)
    if trans_a:      # a is (K, M): op(a)[r, p] = a[p, r]
        for p in range(kc):
            for i in range(rows):
                dst[p * MR + i] = a[k0 + p, row0 + i]
            for i in range(rows, MR):
                dst[p * MR + i] = 0
    else:
        for i in range(rows):
            for p in range(kc):
                dst[p * MR + i] = a[row0 + i, k0 + p]
        for i in range(rows, MR):
            for p in range(kc):
                dst[p * MR + i] = 0


@njit(cache=True, error_model="numpy")
def _pack_b_panel(b, trans_b, col0, k0, kc, n, dst):
    """dst[p*NR + j] = op(b)[k0 + p, col0 + j], zero for columns past n."""
    nr = _panel_width(dst)
    cols = min(nr, n - col0)
    if trans_b:      # b is (N, K): op(b)[p, c] = b[c, p]
        for j in range(cols):
            for p in range(kc):
                dst[p * nr + j] = b[col0 + j, k0 + p]
        for j in range(cols, nr):
            for p in range(kc):
                dst[p * nr + j] = 0
    else:
        for p in range(kc):
            for j in range(cols):
                dst[p * nr + j] = b[k0 + p, col0 + j]
            for j in range(cols, nr):
                dst[p * nr + j] = 0


# ---------------------------------------------------------------- micro/macro kernel
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _tile_update(ap, bp, c, kc, ip0, ip1, jp0, jp1, alpha, beta):
    """C[tile] = alpha * A_panels @ B_panels + beta * C[tile] for A panels ip0..ip1-1 and B panels
    jp0..jp1-1 of the packed KC step (ap, bp); beta == 0 does not read C."""
    _kernel_setup()
    nr = _panel_width(c)
    m, n = c.shape
    acc = carray(_register_tile(c), (MR, nr))
    for jp in range(jp0, jp1):
        # Slices, not offsets: indices built from range() variables are provably >= 0, so numba's
        # negative-index wraparound disappears and LLVM emits plain vector loads.
        b_panel = bp[jp * kc * nr:(jp + 1) * kc * nr]
        col0 = jp * nr
        cols = min(nr, n - col0)
        for ip in range(ip0, ip1):
            a_panel = ap[ip * kc * MR:(ip + 1) * kc * MR]
            row0 = ip * MR
            c_tile = c[row0:row0 + MR, col0:col0 + cols]
            for i in range(MR):
                for j in range(nr):
                    acc[i, j] = 0
            # The register-blocked loop: MR = 4 broadcasts of A times one NR-wide row of B.
            for p in range(kc):
                a0 = a_panel[p * MR + 0]
                a1 = a_panel[p * MR + 1]
                a2 = a_panel[p * MR + 2]
                a3 = a_panel[p * MR + 3]
                for j in range(nr):
                    bj = b_panel[p * nr + j]
                    acc[0, j] += a0 * bj
                    acc[1, j] += a1 * bj
                    acc[2, j] += a2 * bj
                    acc[3, j] += a3 * bj
            if beta == 0:
                for i in range(c_tile.shape[0]):
                    for j in range(cols):
                        c_tile[i, j] = alpha * acc[i, j]
            else:
                for i in range(c_tile.shape[0]):
                    for j in range(cols):
                        c_tile[i, j] = alpha * acc[i, j] + beta * c_tile[i, j]


# ---------------------------------------------------------------- drivers
# A "k-group" is up to `steps` consecutive KC steps whose packed panels fit PACK_ELEMENTS; the
# parallel driver packs a whole group in one parallel loop and then updates every C tile over all
# its steps in a second one: two thread barriers per group rather than two per KC step, and each
# C tile stays in cache across the steps.
PACK_ELEMENTS = 1 << 22


@njit(cache=True, error_model="numpy")
def _group_steps(m, n, k, nr):
    padded = ((m + MR - 1) // MR) * MR + ((n + nr - 1) // nr) * nr
    return max(1, min((k + KC - 1) // KC, PACK_ELEMENTS // (KC * padded)))


@njit(cache=True, error_model="numpy")
def _pack_item(a, b, trans_a, trans_b, k0, k, m, n, ap, bp, q):
    """Pack item q of the k-group starting at k0: q = step * (A panels + B panels) + panel.

    Step s's panels start at s*KC*(padded rows) in ap and s*KC*(padded columns) in bp."""
    nr = _panel_width(bp)
    m_panels = (m + MR - 1) // MR
    n_panels = (n + nr - 1) // nr
    s = q // (m_panels + n_panels)
    panel = q % (m_panels + n_panels)
    ks = k0 + s * KC
    kc = min(KC, k - ks)
    if panel < m_panels:
        base = s * KC * m_panels * MR + panel * kc * MR
        _pack_a_panel(a, trans_a, panel * MR, ks, kc, m, ap[base:base + kc * MR])
    else:
        jp = panel - m_panels
        base = s * KC * n_panels * nr + jp * kc * nr
        _pack_b_panel(b, trans_b, jp * nr, ks, kc, n, bp[base:base + kc * nr])


@njit(cache=True, error_model="numpy")
def _update_over_group(ap, bp, c, k0, k, steps, ip0, ip1, jp0, jp1, alpha, beta):
    """Apply the group's KC steps to one C tile; beta applies on the GEMM's first step only."""
    nr = _panel_width(c)
    m, n = c.shape
    a_step = ((m + MR - 1) // MR) * MR
    b_step = ((n + nr - 1) // nr) * nr
    for s in range(steps):
        ks = k0 + s * KC
        if ks >= k:
            break
        kc = min(KC, k - ks)
        a0 = s * KC * a_step
        b0 = s * KC * b_step
        _tile_update(ap[a0:a0 + kc * a_step], bp[b0:b0 + kc * b_step], c, kc, ip0, ip1, jp0, jp1,
                     alpha, beta if ks == 0 else 1.0)


@njit(cache=True, error_model="numpy")
def _gemm_serial(a, b, c, trans_a, trans_b, alpha, beta):
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    nr = _panel_width(c)
    m_panels = (m + MR - 1) // MR
    n_panels = (n + nr - 1) // nr
    steps = _group_steps(m, n, k, nr)
    ap = _aligned_empty(steps * KC * m_panels * MR, c)
    bp = _aligned_empty(steps * KC * n_panels * nr, c)
    for k0 in range(0, k, steps * KC):
        n_items = min(steps, (k - k0 + KC - 1) // KC) * (m_panels + n_panels)
        for q in range(n_items):
            _pack_item(a, b, trans_a, trans_b, k0, k, m, n, ap, bp, q)
        # C tiles as in the parallel driver: each tile's A and B blocks stay in L2
        for ip0 in range(0, m_panels, MC_PANELS):
            for jp0 in range(0, n_panels, NC_PANELS):
                _update_over_group(ap, bp, c, k0, k, steps, ip0, min(ip0 + MC_PANELS, m_panels),
                                   jp0, min(jp0 + NC_PANELS, n_panels), alpha, beta)


@njit(cache=True, error_model="numpy")
def _tile_shape(m_panels, n_panels, min_tiles):
    """Panels per C tile: MC_PANELS x NC_PANELS, halved (rows first) until there are at least
    min_tiles tiles, so that medium sizes still split evenly among the threads."""
    mc, nc = MC_PANELS, NC_PANELS
    while -(-m_panels // mc) * -(-n_panels // nc) < min_tiles and (mc > 2 or nc > 1):
        if mc > 2:
            mc //= 2
        else:
            nc //= 2
    return mc, nc


@njit(cache=True, error_model="numpy", parallel=True)
def _gemm_parallel(a, b, c, trans_a, trans_b, alpha, beta, min_tiles):
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    nr = _panel_width(c)
    m_panels = (m + MR - 1) // MR
    n_panels = (n + nr - 1) // nr
    steps = _group_steps(m, n, k, nr)
    ap = _aligned_empty(steps * KC * m_panels * MR, c)
    bp = _aligned_empty(steps * KC * n_panels * nr, c)
    mc, nc = _tile_shape(m_panels, n_panels, min_tiles)
    row_tiles = (m_panels + mc - 1) // mc
    col_tiles = (n_panels + nc - 1) // nc
    for k0 in range(0, k, steps * KC):
        n_items = min(steps, (k - k0 + KC - 1) // KC) * (m_panels + n_panels)
        for q in prange(n_items):
            _pack_item(a, b, trans_a, trans_b, k0, k, m, n, ap, bp, q)
        for t in prange(row_tiles * col_tiles):
            ip0 = (t // col_tiles) * mc
            jp0 = (t % col_tiles) * nc
            _update_over_group(ap, bp, c, k0, k, steps, ip0, min(ip0 + mc, m_panels),
                               jp0, min(jp0 + nc, n_panels), alpha, beta)


# ---------------------------------------------------------------- loading order
# Every driver's compiled library carries its own copy of _tile_update, re-optimized with the
# driver's module, as a weak symbol; the JIT linker resolves a weak symbol to a definition it
# already holds. A process that compiles the drivers compiles _tile_update alone first, and every
# driver then calls that copy. A process that loads the drivers from numba's cache loaded only
# the driver, so it called the driver's own copy, and that copy's register allocation is worse
# on AVX2: one of the 8 accumulators goes through the stack on every k step (a loop-carried
# store-to-load chain), 2.2-3.5x C's time instead of 1.3-1.9x. Loading _tile_update by itself
# before any driver makes both kinds of process run the same, separately compiled micro-kernel.
_micro_kernel_loaded = set()


def _load_micro_kernel(dtype, c_layout="C"):
    """Compile (or load from numba's cache) _tile_update for this dtype and layout of c, before
    the first driver that calls it is loaded. Cheap after the first call."""
    key = (np.dtype(dtype), c_layout)
    if key in _micro_kernel_loaded:
        return
    if hasattr(_tile_update, "compile"):      # not under NUMBA_DISABLE_JIT
        elt = numba.from_dtype(key[0])
        panel = types.Array(elt, 1, "C")
        _tile_update.compile((panel, panel, types.Array(elt, 2, c_layout)) + (types.int64,) * 5
                             + (types.float64, types.float64))
    _micro_kernel_loaded.add(key)


def _load_for(c):
    _load_micro_kernel(c.dtype)
    if not c.flags.c_contiguous:
        _load_micro_kernel(c.dtype, numba.typeof(c).layout)


@njit(cache=True, error_model="numpy", parallel=True)
def _gemm_row_blocks(a, b, c, trans_b, alpha, beta, parts):
    """One block of whole MR panels of rows of c per work item, each a serial GEMM that packs its
    own rows of A and all of B: one fork and join per call and no barrier inside (as the C
    driver splits c among its threads), where _gemm_parallel has two per k-group. B is packed
    once per item, which costs k*n copies against m*n*k/parts multiply-adds."""
    m = c.shape[0]
    panels = (m + MR - 1) // MR
    for t in prange(parts):
        r0 = panels * t // parts * MR
        r1 = min(m, panels * (t + 1) // parts * MR)
        if r1 > r0:
            _gemm_serial(a[r0:r1], b, c[r0:r1], False, trans_b, alpha, beta)


def _min_tiles():
    threads = numba.get_num_threads()
    return 0 if threads == 1 else 4 * threads


def gemm(a, b, c, trans_a, trans_b, alpha, beta):
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    _load_for(c)
    alpha, beta = float(alpha), float(beta)
    threads = numba.get_num_threads()
    if 2 * m * n * k < SERIAL_FLOPS or threads == 1:
        _gemm_serial(a, b, c, trans_a, trans_b, alpha, beta)
    elif not trans_a and m >= 4 * MR * threads and c.flags.c_contiguous:
        # Rows of a and c slice into C-contiguous blocks (the serial driver's own signature).
        # Measured at 2 threads, load 3-5: 256^3 1.4-2.3x C's time against 2.5-4.0x with the
        # tiles below; 1024^3 the same as the tiles (1.5-2.0x).
        _gemm_row_blocks(a, b, c, trans_b, alpha, beta, threads)
    else:
        # Work items (panels to pack, C tiles) are handed out one at a time rather than split
        # evenly up front, so a thread that loses its core for a while (a busy machine) does
        # not hold the others up.
        with numba.parallel_chunksize(1):
            _gemm_parallel(a, b, c, trans_a, trans_b, alpha, beta, _min_tiles())


@njit(cache=True, error_model="numpy", parallel=True)
def _gemm_batched_parallel(a, b, c, trans_a, trans_b, alpha, beta):
    for i in prange(c.shape[0]):
        _gemm_serial(a[i], b[i], c[i], trans_a, trans_b, alpha, beta)


def gemm_batched(a, b, c, trans_a, trans_b, alpha, beta):
    nb, m, n = c.shape
    k = a.shape[1] if trans_a else a.shape[2]
    _load_for(c[0] if nb else c)
    alpha, beta = float(alpha), float(beta)
    flops = 2 * m * n * k
    threads = numba.get_num_threads()
    if threads > 1 and flops >= SERIAL_FLOPS:       # big matrices: parallel inside each product
        for i in range(nb):
            gemm(a[i], b[i], c[i], trans_a, trans_b, alpha, beta)
    elif threads > 1 and nb > 1 and nb * flops >= SERIAL_FLOPS:   # many small: over the batch
        _gemm_batched_parallel(a, b, c, trans_a, trans_b, alpha, beta)
    else:
        for i in range(nb):
            _gemm_serial(a[i], b[i], c[i], trans_a, trans_b, alpha, beta)
