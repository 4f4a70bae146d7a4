"""The process group and the collectives, on MPI (mpi4py), in PyTorch's names and semantics.

Every collective runs in place on the numpy arrays behind fastnn Tensors (`t._data`), as
torch.distributed's do on tensors (a device array, one with copy_to_host / copy_to_device as
numba.cuda's, is staged through the host), and is issued as a non-blocking MPI call whose request is
polled (`Request.Test`) against a deadline: FASTNN_DIST_TIMEOUT seconds (default 300; 0 means
none). A collective that does not finish in time -- a peer died, hangs, or skipped it -- raises
DistTimeoutError naming this rank and the operation; uncaught, it (like any uncaught exception in
a rank) prints the rank and calls MPI_Abort, so the launcher ends every rank instead of leaving
them blocked.

A rank that dies without a word (SIGKILL, os._exit, a crash in native code) cannot report itself:
the launcher (mpich's hydra, Open MPI's orted, srun) notices and kills the job; a small watchdog
process per rank (FASTNN_DIST_WATCHDOG=0 turns it off) sees its rank's pipe close without the
goodbye that destroy_process_group / a normal exit sends, and prints which rank it was.
"""
import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..tensor import Tensor

__all__ = ["ReduceOp", "Work", "DistError", "DistTimeoutError", "is_available",
           "init_process_group", "is_initialized", "get_rank", "get_world_size", "get_backend",
           "barrier", "destroy_process_group", "all_reduce", "broadcast", "all_gather",
           "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "new_group",
           "get_timeout", "broadcast_object_list", "all_gather_object"]


class DistError(RuntimeError):
    """A failed collective (PyTorch's torch.distributed.DistError)."""


class DistTimeoutError(DistError):
    """A collective did not complete within the process group's timeout."""


class ReduceOp:
    """The reduction of all_reduce / reduce_scatter: ReduceOp.SUM, AVG, PRODUCT, MIN, MAX,
    BAND, BOR, BXOR (PyTorch's names)."""
    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"


class _State:
    comm = None          # an MPI communicator (a Dup of COMM_WORLD: ours alone)
    MPI = None
    rank = -1
    size = -1
    timeout = 300.0
    watchdog = None      # (Popen, write fd)
    prev_excepthook = None


_S = _State()


# ---------------------------------------------------------------- availability and setup
def is_available():
    """True when mpi4py imports (pip install ".[mpi]" brings it and an MPI library)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_initialized():
    return _S.comm is not None


def _need():
    if _S.comm is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to "
                           "call fastnn.distributed.init_process_group(backend='mpi')")


def get_rank(group=None):
    _need()
    return _comm(group).Get_rank() if group is not None else _S.rank


def get_world_size(group=None):
    _need()
    return _comm(group).Get_size() if group is not None else _S.size


def get_backend(group=None):
    _need()
    return "mpi"


def get_timeout():
    """Seconds a collective may take before it raises (None: no limit)."""
    return _S.timeout


def _seconds(timeout):
    if timeout is None:
        env = os.environ.get("FASTNN_DIST_TIMEOUT", "300")
        try:
            timeout = float(env)
        except ValueError:
            raise ValueError(f"FASTNN_DIST_TIMEOUT must be a number of seconds, got {env!r}")
    elif hasattr(timeout, "total_seconds"):  # a datetime.timedelta, as PyTorch takes
        timeout = timeout.total_seconds()
    timeout = float(timeout)
    return None if timeout <= 0 else timeout


def init_process_group(backend="mpi", init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the job: rank and world size come from MPI (the launcher: mpiexec, srun).

    backend: "mpi" (or None); world_size / rank, if given, must agree with MPI's.
    timeout: seconds or a timedelta for every collective (default FASTNN_DIST_TIMEOUT or 300 s).
    """
    if _S.comm is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    if backend not in (None, "mpi", "MPI"):
        raise ValueError(f"init_process_group: fastnn runs over MPI; backend={backend!r} is not "
                         f"supported (use backend='mpi')")
    try:
        import mpi4py
    except ImportError as e:
        raise RuntimeError("init_process_group: mpi4py is not installed; pip install "
                           "'fastnn[mpi]' (mpi4py and the mpich wheel) and launch with "
                           "mpiexec -n N python script.py") from e
    if not _mpi_initialized():
        mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI
    from mpi4py import MPI
    comm = MPI.COMM_WORLD.Dup()
    n, r = comm.Get_size(), comm.Get_rank()
    if world_size not in (-1, None) and int(world_size) != n:
        raise ValueError(f"init_process_group: world_size={world_size} but MPI started {n} ranks")
    if rank not in (-1, None) and int(rank) != r:
        raise ValueError(f"init_process_group: rank={rank} but MPI says this is rank {r}")
    _S.MPI, _S.comm, _S.rank, _S.size = MPI, comm, r, n
    _S.timeout = _seconds(timeout)
    _S.prev_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    if os.environ.get("FASTNN_DIST_WATCHDOG", "1") != "0":
        token = comm.bcast(os.urandom(8).hex() if r == 0 else None, root=0)
        one_node = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size() == n
        _S.watchdog = _start_watchdog(token, one_node)
    return None


def _mpi_initialized():
    mod = sys.modules.get("mpi4py.MPI")
    return mod is not None and mod.Is_initialized()


def destroy_process_group(group=None):
    """Leave the job (the MPI library itself stays up until the interpreter exits)."""
    if _S.comm is None:
        return
    if group is not None and group is not _S.comm:
        _comm(group).Free()
        return
    _stop_watchdog()
    try:
        _S.comm.Free()
    finally:
        _S.comm = None
        _S.rank = _S.size = -1
        if sys.excepthook is _excepthook:
            sys.excepthook = _S.prev_excepthook or sys.__excepthook__


def new_group(ranks=None, timeout=None, backend=None):
    """A sub-communicator over `ranks` (all ranks must call it); non-members get None."""
    _need()
    ranks = list(range(_S.size)) if ranks is None else sorted(int(r) for r in ranks)
    grp = _S.comm.Get_group().Incl(ranks)
    sub = _S.comm.Create_group(grp)
    grp.Free()
    return sub if sub != _S.MPI.COMM_NULL else None


def _comm(group):
    if group is None:
        _need()
        return _S.comm
    return group


# ---------------------------------------------------------------- failures
def _describe():
    return f"rank {_S.rank} of {_S.size} (pid {os.getpid()} on {socket.gethostname()})"


def _excepthook(tp, value, tb):
    if _S.comm is None or tp is KeyboardInterrupt and _S.size == 1:
        (_S.prev_excepthook or sys.__excepthook__)(tp, value, tb)
        return
    msg = (f"fastnn.distributed: {_describe()} failed with {tp.__name__}: {value}\n"
           f"fastnn.distributed: aborting all {_S.size} ranks (MPI_Abort) so that none waits "
           f"forever on this one\n")
    try:
        # The naming line goes first: MPI_Abort tears the launcher down, and output it has not
        # forwarded yet (a long traceback on a loaded machine) can be lost with it.
        sys.stderr.write(msg)
        sys.stderr.flush()
        (_S.prev_excepthook or sys.__excepthook__)(tp, value, tb)
        sys.stderr.flush()
        time.sleep(0.3)   # let the launcher forward what was written before it ends the job
    finally:
        _stop_watchdog(claim=True)
        _S.MPI.COMM_WORLD.Abort(1)


def _wait(req, what):
    """Wait for an MPI request, polling against the deadline. MPICH progresses a non-blocking
    collective only inside MPI calls, so this spins on Test(), yielding the core to any other
    runnable process after the first polls (a peer rank on an oversubscribed machine), and
    after 0.2 s sleeps between polls so that a straggler does not burn a core."""
    if req.Test():
        return
    t0 = time.monotonic()
    deadline = None if _S.timeout is None else t0 + _S.timeout
    polls = 0
    yield_ = getattr(os, "sched_yield", None)
    while True:
        if req.Test():
            return
        polls += 1
        if polls > 256 and yield_ is not None:
            yield_()
        if polls & 63 == 0:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                _timed_out(what)
            if now - t0 > 0.2:
                time.sleep(1e-4)


def _waitall(reqs, what):
    for r in reqs:
        _wait(r, what)


def _timed_out(what):
    msg = (f"fastnn.distributed: {_describe()}: {what} did not complete within {_S.timeout:g} s "
           f"(FASTNN_DIST_TIMEOUT): another rank has died, hangs, or did not call the same "
           f"collective")
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
    raise DistTimeoutError(msg)


_WATCHDOG = r"""
import os, sys, time
rank, size, pid, host, claim, one_node = sys.argv[1:7]
data = b""
while True:
    try:
        chunk = os.read(0, 64)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
if b"ok" in data:
    sys.exit(0)
try:
    fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, rank.encode())
    os.close(fd)
except OSError:
    sys.exit(0)  # another rank on this node went first: this one was ended because of it
how = ("died" if one_node == "1" else "ended (it died, or the launcher ended it after another "
       "rank failed)")
sys.stderr.write(f"fastnn.distributed: rank {rank} of {size} (pid {pid} on {host}) {how} "
                 f"without destroy_process_group() or a normal exit: killed by a signal, "
                 f"os._exit(), or a crash in native code; the launcher ends the other ranks\n")
sys.stderr.flush()
os.close(2)
time.sleep(20)
try:
    os.unlink(claim)
except OSError:
    pass
"""


def _start_watchdog(token, one_node):
    claim = os.path.join(tempfile.gettempdir(), f"fastnn-dist-{token}.failed")
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(_S.rank), str(_S.size),
             str(os.getpid()), socket.gethostname(), claim, "1" if one_node else "0"],
            stdin=r, stdout=subprocess.DEVNULL, close_fds=True, start_new_session=True)
    except OSError:
        os.close(r)
        os.close(w)
        return None
    os.close(r)
    atexit.register(_stop_watchdog)
    return proc, w, claim


def _stop_watchdog(claim=False):
    wd = _S.watchdog
    if wd is None:
        return
    _S.watchdog = None
    proc, w, path = wd
    if claim:  # this rank reported its own failure: the others' watchdogs stay quiet
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError:
            pass
    try:
        os.write(w, b"ok")
        os.close(w)
    except OSError:
        pass
    if not claim:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------- collectives
def _array(t, name):
    """The host array of a Tensor (or ndarray). A device array (one with copy_to_host, as
    numba.cuda's) goes through the host: this is a copy, written back by _set."""
    a = t._data if isinstance(t, Tensor) else t
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "copy_to_host") and hasattr(a, "copy_to_device"):
        return np.ascontiguousarray(a.copy_to_host())
    raise TypeError(f"{name}: expected a fastnn Tensor (or numpy array), got {type(t).__name__}")


def _set(t, arr):
    """Write arr into t's array in place (t: Tensor or ndarray; a device array via the host)."""
    a = t._data if isinstance(t, Tensor) else t
    if isinstance(a, np.ndarray):
        if a is not arr:
            a[...] = arr
    else:
        a.copy_to_device(np.ascontiguousarray(arr).reshape(a.shape))


def _work_buffer(a, name):
    """a itself when MPI can write into it, else a contiguous copy (written back later)."""
    if not a.flags.writeable:
        raise ValueError(f"{name}: the tensor's array is read-only")
    if a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a)


def _mpi_op(op, dtype, name):
    MPI = _S.MPI
    table = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
             ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
             ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}
    if op not in table:
        raise ValueError(f"{name}: unknown op {op!r} (use fastnn.distributed.ReduceOp.*)")
    if op == ReduceOp.AVG and dtype.kind not in "fc":
        raise TypeError(f"{name}: ReduceOp.AVG needs a floating-point tensor, got {dtype}")
    return table[op]


class Work:
    """A collective in flight (async_op=True): wait() blocks until it is done (and its result is
    in the tensors); is_completed() polls."""

    def __init__(self, reqs, what, finish=None):
        self._reqs, self._what, self._finish, self._done = list(reqs), what, finish, False

    def is_completed(self):
        if self._done:
            return True
        if all(r.Test() for r in self._reqs):
            self._complete()
            return True
        return False

    def wait(self, timeout=None):
        if not self._done:
            _waitall(self._reqs, self._what)
            self._complete()
        return True

    def _complete(self):
        if not self._done:
            self._done = True
            if self._finish is not None:
                self._finish()

    def result(self):
        self.wait()
        return []


def _run(reqs, what, finish, async_op):
    work = Work(reqs, what, finish)
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` across ranks, in place; every rank ends with the result."""
    comm = _comm(group)
    a = _array(tensor, "all_reduce")
    mop = _mpi_op(op, a.dtype, "all_reduce")
    buf = _work_buffer(a, "all_reduce")
    n = comm.Get_size()

    def finish():
        if op == ReduceOp.AVG:
            np.divide(buf, n, out=buf)
        _set(tensor, buf)

    if a.size == 0:
        return _run([], "all_reduce", None, async_op)
    req = comm.Iallreduce(_S.MPI.IN_PLACE, buf, op=mop)
    return _run([req], f"all_reduce({a.size} x {a.dtype})", finish, async_op)


def broadcast(tensor, src=0, group=None, async_op=False):
    """Copy rank `src`'s tensor into every rank's, in place."""
    comm = _comm(group)
    a = _array(tensor, "broadcast")
    if not 0 <= src < comm.Get_size():
        raise ValueError(f"broadcast: src={src} is not a rank of a group of {comm.Get_size()}")
    buf = _work_buffer(a, "broadcast")
    if a.size == 0:
        return _run([], "broadcast", None, async_op)
    req = comm.Ibcast(buf, root=src)
    return _run([req], f"broadcast({a.size} x {a.dtype}, src={src})",
                lambda: _set(tensor, buf), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """Concatenate every rank's input along dim 0 into output (size: world_size x input's)."""
    comm = _comm(group)
    n = comm.Get_size()
    src = np.ascontiguousarray(_array(input_tensor, "all_gather_into_tensor"))
    out = _array(output_tensor, "all_gather_into_tensor")
    if out.size != n * src.size or out.dtype != src.dtype:
        raise ValueError(f"all_gather_into_tensor: output {out.shape} {out.dtype} must hold "
                         f"{n} x input {src.shape} {src.dtype}")
    buf = _work_buffer(out, "all_gather_into_tensor")
    if src.size == 0:
        return _run([], "all_gather", None, async_op)
    req = comm.Iallgather(src, buf)
    return _run([req], f"all_gather({src.size} x {src.dtype})",
                lambda: _set(output_tensor, buf), async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[i] <- rank i's tensor, on every rank (all the same shape and dtype)."""
    comm = _comm(group)
    n = comm.Get_size()
    src = np.ascontiguousarray(_array(tensor, "all_gather"))
    if len(tensor_list) != n:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} entries for a group of "
                         f"{n} ranks")
    for t in tensor_list:
        a = _array(t, "all_gather")
        if a.shape != src.shape or a.dtype != src.dtype:
            raise ValueError(f"all_gather: every output must be {src.shape} {src.dtype}, got "
                             f"{a.shape} {a.dtype}")
    buf = np.empty((n,) + src.shape, src.dtype)

    def finish():
        for i, t in enumerate(tensor_list):
            _set(t, buf[i])

    if src.size == 0:
        return _run([], "all_gather", None, async_op)
    req = comm.Iallgather(src, buf)
    return _run([req], f"all_gather({src.size} x {src.dtype})", finish, async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce input (world_size x output's size, split along dim 0) across ranks; rank i keeps
    block i in output."""
    comm = _comm(group)
    n = comm.Get_size()
    src = np.ascontiguousarray(_array(input, "reduce_scatter_tensor"))
    out = _array(output, "reduce_scatter_tensor")
    if src.size != n * out.size or out.dtype != src.dtype:
        raise ValueError(f"reduce_scatter_tensor: input {src.shape} {src.dtype} must hold {n} x "
                         f"output {out.shape} {out.dtype}")
    mop = _mpi_op(op, out.dtype, "reduce_scatter_tensor")
    buf = _work_buffer(out, "reduce_scatter_tensor")

    def finish():
        if op == ReduceOp.AVG:
            np.divide(buf, n, out=buf)
        _set(output, buf)

    if out.size == 0:
        return _run([], "reduce_scatter", None, async_op)
    req = comm.Ireduce_scatter_block(src, buf, op=mop)
    return _run([req], f"reduce_scatter({out.size} x {out.dtype})", finish, async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """output <- the reduction over ranks of input_list[this rank]."""
    comm = _comm(group)
    n = comm.Get_size()
    if len(input_list) != n:
        raise ValueError(f"reduce_scatter: input_list has {len(input_list)} entries for a group "
                         f"of {n} ranks")
    out = _array(output, "reduce_scatter")
    parts = [_array(t, "reduce_scatter") for t in input_list]
    for p in parts:
        if p.size != out.size or p.dtype != out.dtype:
            raise ValueError(f"reduce_scatter: every input must be {out.shape} {out.dtype}, got "
                             f"{p.shape} {p.dtype}")
    src = np.stack([p.reshape(out.shape) for p in parts]) if parts else np.empty(0, out.dtype)
    return reduce_scatter_tensor(output, src, op, group, async_op)


def barrier(group=None, async_op=False, device_ids=None):
    comm = _comm(group)
    return _run([comm.Ibarrier()], "barrier", None, async_op)


# ---------------------------------------------------------------- Python objects (pickled)
def broadcast_object_list(object_list, src=0, group=None, device=None):
    """object_list[:] <- rank src's (picklable objects; PyTorch's semantics). Only for trusted
    peers: the objects travel as pickles."""
    import pickle
    comm = _comm(group)
    me = comm.Get_rank()
    payload = np.frombuffer(pickle.dumps(list(object_list)), np.uint8) if me == src else None
    size = np.array([0 if payload is None else payload.size], np.int64)
    broadcast(size, src, group)
    buf = payload.copy() if me == src else np.empty(int(size[0]), np.uint8)
    broadcast(buf, src, group)
    if me != src:
        object_list[:] = pickle.loads(buf.tobytes())


def all_gather_object(object_list, obj, group=None):
    """object_list[i] <- rank i's obj, on every rank (pickled; trusted peers only)."""
    import pickle
    comm = _comm(group)
    n = comm.Get_size()
    if len(object_list) != n:
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries for a "
                         f"group of {n} ranks")
    mine = np.frombuffer(pickle.dumps(obj), np.uint8)
    sizes = np.empty(n, np.int64)
    all_gather_into_tensor(sizes, np.array([mine.size], np.int64), group)
    counts = sizes.tolist()
    displs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    buf = np.empty(int(sizes.sum()), np.uint8)
    _wait(comm.Iallgatherv(mine, [buf, (counts, displs)]), "all_gather_object")
    for i in range(n):
        object_list[i] = pickle.loads(buf[displs[i]:displs[i] + counts[i]].tobytes())
