"""ZeroRedundancyOptimizer: ZeRO stage 1 (sharded optimizer state), PyTorch's name and API.

Each rank owns a shard of the parameters (whole tensors, assigned greedily largest first to the
rank with the fewest bytes so far, as PyTorch does) and runs the wrapped optimizer -- AdamW by
default -- on that shard only, so only it holds their state (AdamW: two moments per element).
After its local step every rank's updated shard is all-gathered (one MPI Allgatherv per dtype),
so every rank ends each step with all parameters updated, exactly as the unsharded optimizer
would (the update of each element does not depend on the others).

Use it with DistributedDataParallel (whose backward leaves the averaged gradients in .grad):

    opt = ZeroRedundancyOptimizer(ddp_model.parameters(), optimizer_class=fastnn.optim.AdamW,
                                  lr=1e-3, weight_decay=0.1)
    ...
    opt.consolidate_state_dict(to=0)          # collective: gathers the shards on rank 0
    if rank == 0: sd = opt.state_dict()       # the unsharded optimizer's layout (loads in AdamW)
"""
import copy
import inspect

import numpy as np

from ..optim.optimizer import AdamW, Optimizer
from . import process_group as _pg

__all__ = ["ZeroRedundancyOptimizer"]


class ZeroRedundancyOptimizer(Optimizer):
    def __init__(self, params, optimizer_class=AdamW, process_group=None,
                 parameters_as_bucket_view=False, overlap_with_ddp=False, **defaults):
        if overlap_with_ddp:
            raise NotImplementedError("ZeroRedundancyOptimizer: overlap_with_ddp is not supported")
        self._comm = _pg._comm(process_group)
        self.optimizer_class = optimizer_class
        self.rank, self.world_size = self._comm.Get_rank(), self._comm.Get_size()
        self._local = None
        sig = inspect.signature(optimizer_class.__init__).parameters
        full = {k: v.default for k, v in sig.items()
                if k not in ("self", "params") and v.default is not inspect.Parameter.empty}
        full.update(defaults)
        super().__init__(params, full)  # fills param_groups via add_param_group
        self._partition()

    # ------------------------------------------------------------ sharding
    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def _partition(self):
        params = self._all_params()
        load = [0] * self.world_size
        owner = {}
        # largest first, each to the least-loaded rank (ties: the lowest rank)
        for i in sorted(range(len(params)), key=lambda i: (-params[i]._data.nbytes, i)):
            r = min(range(self.world_size), key=lambda r: (load[r], r))
            owner[id(params[i])] = r
            load[r] += params[i]._data.nbytes
        self._owner = owner
        self._shard_bytes = load
        mine = []
        for g in self.param_groups:
            ps = [p for p in g["params"] if owner[id(p)] == self.rank]
            if ps:
                local = {k: v for k, v in g.items() if k != "params"}
                local["params"] = ps
                mine.append((g, local))
        self._group_map = mine
        self._local = (self.optimizer_class([lg for _, lg in mine], **self.defaults)
                       if mine else None)
        # per dtype: the parameters of each rank, in global order (the all-gather layout)
        self._by_dtype = {}
        for p in params:
            per = self._by_dtype.setdefault(p._data.dtype, [[] for _ in range(self.world_size)])
            per[owner[id(p)]].append(p)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if self._local is not None or getattr(self, "_owner", None) is not None:
            self._partition()  # re-shard with the new group (state of kept params is lost)

    @property
    def local_optimizer(self):
        """The wrapped optimizer over this rank's shard (None if the shard is empty)."""
        return self._local

    def local_state_bytes(self):
        """Bytes of optimizer state (arrays) this rank holds."""
        if self._local is None:
            return 0
        return sum(v.nbytes for st in self._local.state.values() for v in st.values()
                   if isinstance(v, np.ndarray))

    def shard_bytes(self):
        """Parameter bytes owned by each rank."""
        return list(self._shard_bytes)

    # ------------------------------------------------------------ step
    def zero_grad(self, set_to_none=True):
        for p in self._all_params():
            p.grad = None if (set_to_none or p.grad is None) else np.zeros_like(p._data)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            from ..tensor import enable_grad
            with enable_grad():
                loss = closure()
        if self._local is not None:
            for g, lg in self._group_map:  # hyper-parameters (lr from a scheduler) follow
                for k, v in g.items():
                    if k != "params":
                        lg[k] = v
            self._local.step()
        self._sync_params()
        return loss

    def _sync_params(self):
        """Every rank's updated shard to every rank: one Allgatherv per dtype."""
        comm, r = self._comm, self.rank
        for dt, per in self._by_dtype.items():
            counts = [sum(p._data.size for p in ps) for ps in per]
            total = sum(counts)
            if total == 0:
                continue
            displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
            send = (np.concatenate([p._data.reshape(-1) for p in per[r]]) if per[r]
                    else np.empty(0, dt))
            recv = np.empty(total, dt)
            req = comm.Iallgatherv(send, [recv, (counts, displs)])
            _pg._wait(req, f"ZeroRedundancyOptimizer parameter all-gather ({total} x {dt})")
            for q, ps in enumerate(per):
                if q == r:
                    continue
                o = displs[q]
                for p in ps:
                    n = p._data.size
                    p._data[...] = recv[o:o + n].reshape(p._data.shape)
                    o += n

    # ------------------------------------------------------------ state dict
    def consolidate_state_dict(self, to=0):
        """Collective: gather every shard's optimizer state on rank `to`; then state_dict() there
        returns the unsharded optimizer's state dict."""
        params = self._all_params()
        index = {id(p): i for i, p in enumerate(params)}
        local = {}
        if self._local is not None:
            for p, st in self._local.state.items():
                local[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                       for k, v in st.items()}
        gathered = [None] * self.world_size  # (all ranks get every shard: simple, small)
        _pg.all_gather_object(gathered, local, group=self._comm)
        self._consolidated = None
        if self.rank == to:
            merged = {}
            for part in gathered:
                merged.update(part)
            self._consolidated = dict(sorted(merged.items()))

    def state_dict(self):
        """PyTorch's unsharded layout; needs consolidate_state_dict() on this rank first."""
        st = getattr(self, "_consolidated", None)
        if st is None:
            raise RuntimeError("ZeroRedundancyOptimizer.state_dict: call "
                               "consolidate_state_dict(to=this rank) on every rank first")
        index = {id(p): i for i, p in enumerate(self._all_params())}
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": copy.deepcopy(st), "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load an unsharded state dict (from state_dict() or a plain optimizer's): each rank
        keeps its shard's part."""
        params = self._all_params()
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("load_state_dict: the parameter groups do not match")
        for g, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    g[k] = copy.deepcopy(v)
        if self._local is None:
            return
        # the local optimizer's own layout: its groups' parameters, numbered in order
        local_index, local_groups = {}, []
        for g, lg in self._group_map:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = []
            for p in lg["params"]:
                local_index[id(p)] = len(local_index)
                d["params"].append(local_index[id(p)])
            local_groups.append(d)
        state = {}
        for i, st in state_dict["state"].items():
            p = params[int(i)]
            if id(p) in local_index:
                state[local_index[id(p)]] = st
        self._local.load_state_dict({"state": state, "param_groups": local_groups})
        for g, lg in self._group_map:
            for k, v in g.items():
                if k != "params":
                    lg[k] = v

    def __repr__(self):
        return (f"ZeroRedundancyOptimizer(rank {self.rank} of {self.world_size}, "
                f"{self.optimizer_class.__name__}, shard bytes {self._shard_bytes})")

