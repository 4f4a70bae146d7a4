"""Checkpoints: fastnn's .npz (round trips, nested containers, file objects, atomic writes,
refusing pickled, truncated, corrupt or foreign files), PyTorch's .pt zip format both ways (read
with an allow-list unpickler that refuses anything else, without running it) and safetensors."""
import collections
import io
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn import serialization
from fastnn import _pt_format


def _arr(x):
    """numpy array of a fastnn Tensor, a torch tensor or an array."""
    if isinstance(x, fastnn.Tensor):
        return np.asarray(x._data)
    if hasattr(x, "detach"):
        return x.detach().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------- fastnn's .npz
def test_round_trip_dtypes_and_module_state(tmp_path):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    path = tmp_path / "m.npz"
    state = dict(model.state_dict())
    state.update({"meta.step": 7, "meta.name": "mlp", "meta.f64": np.arange(3.0),
                  "meta.tensor": fastnn.tensor([1, 2])})
    fastnn.save(state, path)
    loaded = fastnn.load(path)
    assert list(loaded) == list(state)
    assert loaded["meta.step"] == 7 and str(loaded["meta.name"]) == "mlp"
    assert loaded["meta.f64"].dtype == np.float64 and loaded["meta.tensor"].dtype == np.int64
    assert isinstance(loaded["meta.tensor"], fastnn.Tensor)  # a Tensor comes back a Tensor
    assert isinstance(loaded["meta.f64"], np.ndarray)          # and an array an array
    fresh = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    fresh.load_state_dict({k: v for k, v in loaded.items() if not k.startswith("meta.")})
    for k, v in model.state_dict().items():
        assert _arr(fresh.state_dict()[k]).dtype == np.float32
        np.testing.assert_array_equal(_arr(fresh.state_dict()[k]), _arr(v))
    x = fastnn.randn(2, 4)
    with fastnn.use_backend("numpy"), fastnn.no_grad():
        np.testing.assert_array_equal(model(x)._data, fresh(x)._data)


def test_model_load_state_dict_of_load_works_in_every_format(tmp_path):
    fastnn.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    names = ["m.npz", "m.pt", "m.pth", "m.bin"]
    try:
        import safetensors  # noqa: F401  (an optional dependency)
        names.append("m.safetensors")
    except ImportError:
        pass
    for name in names:
        fastnn.save(model.state_dict(), tmp_path / name)
        fresh = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
        fresh.load_state_dict(fastnn.load(tmp_path / name))
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(_arr(fresh.state_dict()[k]), _arr(v), err_msg=name)


def _nested_checkpoint():
    fastnn.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = fastnn.optim.Adam(model.parameters(), lr=1e-2)
    x = fastnn.randn(5, 3)
    loss = (model(x) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    shared = fastnn.tensor([1.0, 2.0])
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "loss": 0.25, "name": "run-1", "flags": [True, False, None],
            "shape": (2, 3), "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
            "by_int": {0: fastnn.tensor([0.5]), 7: "seven"}, "tied": [shared, shared],
            "nan": float("nan"), "blob": b"\x00\x01", "dtype": np.dtype(np.float32),
            "np_scalar": np.float32(1.5), "empty": {}}


def _assert_same(a, b, path="root"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        assert type(a) is type(b), path
        for k in a:
            _assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}.{i}")
    elif isinstance(a, (fastnn.Tensor, np.ndarray)):
        assert type(a) is type(b) or (isinstance(a, fastnn.Tensor) and
                                      isinstance(b, fastnn.Tensor)), path
        assert _arr(a).dtype == _arr(b).dtype and _arr(a).shape == _arr(b).shape, path
        np.testing.assert_array_equal(_arr(a), _arr(b), err_msg=path)
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, path
    else:
        assert type(a) is type(b) and a == b, path


def test_nested_checkpoint_round_trips_through_paths_and_file_objects(tmp_path):
    ck = _nested_checkpoint()
    fastnn.save(ck, tmp_path / "ck.npz")
    _assert_same(ck, fastnn.load(tmp_path / "ck.npz"))
    buf = io.BytesIO()
    fastnn.save(ck, buf)
    buf.seek(0)
    back = fastnn.load(buf, weights_only=True, map_location="cpu")
    _assert_same(ck, back)
    assert back["tied"][0] is back["tied"][1]  # one tensor saved once, loaded once
    with open(tmp_path / "ck2.npz", "wb") as f:
        fastnn.save(ck, f)
    with open(tmp_path / "ck2.npz", "rb") as f:
        _assert_same(ck, fastnn.load(f))
    # numpy reads the arrays too (the file is an ordinary .npz)
    with np.load(tmp_path / "ck.npz") as z:
        assert "model.0.weight" in z.files and "optimizer.state.0.exp_avg" in z.files
    # the optimizer state restores into a fresh optimizer
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model.load_state_dict(back["model"])
    opt = fastnn.optim.Adam(model.parameters(), lr=1e-2)
    opt.load_state_dict(back["optimizer"])


def test_old_flat_checkpoints_still_load_as_arrays(tmp_path):
    path = tmp_path / "old.npz"
    with zipfile.ZipFile(path, "w") as zf:  # what fastnn's first save() wrote
        for k, v in {"w": np.ones((2, 2), np.float32), "config.json": np.array('{"a": 1}')}.items():
            with zf.open(k + ".npy", "w") as m:
                np.lib.format.write_array(m, v, allow_pickle=False)
    out = fastnn.load(path)
    assert set(out) == {"w", "config.json"} and isinstance(out["w"], np.ndarray)
    assert str(out["config.json"]) == '{"a": 1}'
    np.savez(tmp_path / "plain.npz", a=np.arange(3))
    np.testing.assert_array_equal(fastnn.load(tmp_path / "plain.npz")["a"], np.arange(3))


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    fastnn.save({"w": np.ones(3)}, path)
    # a crash while writing must leave the previous checkpoint intact and no temp file behind
    def boom(*a, **k):
        raise KeyboardInterrupt("simulated crash")
    monkeypatch.setattr(np.lib.format, "write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        fastnn.save({"w": np.zeros(3)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(fastnn.load(path)["w"], np.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    fastnn.save({"w": np.zeros(3)}, str(tmp_path / "sub" / "new.npz"))  # creates the folder
    assert (tmp_path / "sub" / "new.npz").exists()


@pytest.mark.parametrize("name", ["a.pt", "a.safetensors"])
def test_failed_save_mid_way_keeps_the_previous_file(tmp_path, monkeypatch, name):
    if name.endswith(".safetensors"):
        pytest.importorskip("safetensors")
    path = tmp_path / name
    fastnn.save({"w": fastnn.ones(4), "b": fastnn.zeros(2)}, path)
    before = path.read_bytes()
    calls = []
    if name.endswith(".pt"):
        real = _pt_format._write_record

        def half_then_fail(zf, rec, payload, align=64):
            calls.append(rec)
            if len(calls) > 3:  # after data.pkl and a few records are on disk
                raise OSError("disk full (simulated)")
            return real(zf, rec, payload, align)
        monkeypatch.setattr(_pt_format, "_write_record", half_then_fail)
    else:
        import safetensors.numpy as stnp

        def fail(*a, **k):
            raise OSError("disk full (simulated)")
        monkeypatch.setattr(stnp, "save", fail)
    with pytest.raises(OSError, match="simulated"):
        fastnn.save({"w": fastnn.zeros(4), "b": fastnn.ones(2)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [name]
    np.testing.assert_array_equal(_arr(fastnn.load(path)["w"]), np.ones(4, np.float32))


def test_refuses_pickle(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"w": np.ones(2)}, f)
    with pytest.raises(fastnn.CheckpointError, match="pickle"):
        fastnn.load(path)


def test_refuses_object_arrays_inside_npz(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))  # np.savez pickles object arrays
    with pytest.raises(fastnn.CheckpointError, match="pickled"):
        fastnn.load(path)
    with pytest.raises(TypeError, match="never pickled"):
        fastnn.save({"w": np.array([None], dtype=object)}, tmp_path / "x.npz")


def test_refuses_truncated_and_corrupt_files(tmp_path):
    good = tmp_path / "good.npz"
    fastnn.save({"w": np.arange(1000.0), "b": np.ones(5)}, good)
    blob = good.read_bytes()
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(fastnn.CheckpointError, match="truncated or corrupt"):
        fastnn.load(truncated)
    corrupt = tmp_path / "corrupt.npz"
    damaged = bytearray(blob)
    damaged[200:260] = b"\xff" * 60
    corrupt.write_bytes(bytes(damaged))
    with pytest.raises(fastnn.CheckpointError):
        fastnn.load(corrupt)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(fastnn.CheckpointError, match="empty"):
        fastnn.load(empty)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(fastnn.CheckpointError, match="not a fastnn checkpoint"):
        fastnn.load(text)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")
    # a .pt truncated mid-way
    fastnn.save({"w": fastnn.ones(100)}, tmp_path / "t.pt")
    blob = (tmp_path / "t.pt").read_bytes()
    (tmp_path / "t2.pt").write_bytes(blob[:len(blob) - 200])
    with pytest.raises(fastnn.CheckpointError):
        fastnn.load(tmp_path / "t2.pt")


def test_save_rejects_what_it_cannot_store(tmp_path):
    class Thing:
        pass
    for name in ("x.npz", "x.pt"):
        with pytest.raises(TypeError, match="Thing"):
            fastnn.save({"a": Thing()}, tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(TypeError, match="flat dict"):
        fastnn.save([fastnn.ones(2)], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="never"):
        fastnn.save({}, tmp_path / "y.npz", pickle_module=pickle)
    with pytest.raises(ValueError, match="format"):
        fastnn.save({}, tmp_path / "y.npz", format="hdf5")
    # a list at the top level is fine (as torch.save)
    fastnn.save([fastnn.ones(2), 3], tmp_path / "list.npz")
    back = fastnn.load(tmp_path / "list.npz")
    assert isinstance(back, list) and back[1] == 3


# ---------------------------------------------------------------- PyTorch's .pt format
def _torch():
    return pytest.importorskip("torch")


def test_fastnn_pt_loads_in_torch_weights_only(tmp_path):
    torch = _torch()
    fastnn.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    sd = model.state_dict()
    path = tmp_path / "model.pt"
    fastnn.save(sd, path)
    got = torch.load(path, weights_only=True)
    assert list(got) == list(sd)
    for k in sd:
        assert isinstance(got[k], torch.Tensor)
        np.testing.assert_array_equal(got[k].numpy(), _arr(sd[k]))
    tm = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    tm.load_state_dict(got)
    # mmap needs torch's storage alignment, which the writer keeps
    got = torch.load(path, weights_only=True, mmap=True)
    np.testing.assert_array_equal(got["0.weight"].numpy(), _arr(sd["0.weight"]))


def test_fastnn_pt_dtypes_shapes_and_nesting_load_in_torch(tmp_path):
    torch = _torch()
    obj = {"f32": fastnn.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
           "f64": np.arange(3.0), "i64": fastnn.tensor([1, -2, 3]),
           "i32": np.array([[1, 2]], np.int32), "u8": np.array([0, 255], np.uint8),
           "b": np.array([True, False]), "f16": np.array([0.5, 1.5], np.float16),
           "scalar": fastnn.tensor(2.5), "empty": np.zeros((0, 3), np.float32),
           "transposed": fastnn.tensor(np.arange(6.0).reshape(2, 3).T),
           "nested": {"epoch": 4, "lr": 0.1, "name": "x", "t": (1, 2), "l": [None, True],
                      0: fastnn.ones(1), "dtype": np.dtype(np.float32)},
           "ordered": collections.OrderedDict(a=fastnn.zeros(2))}
    path = tmp_path / "all.pth"
    fastnn.save(obj, path)
    got = torch.load(path, weights_only=True)
    for k in ("f32", "f64", "i64", "i32", "u8", "b", "f16", "scalar", "empty", "transposed"):
        ref = _arr(obj[k])
        assert got[k].numpy().dtype == ref.dtype and tuple(got[k].shape) == ref.shape, k
        np.testing.assert_array_equal(got[k].numpy(), ref)
    assert got["nested"]["epoch"] == 4 and got["nested"]["name"] == "x"
    assert got["nested"]["t"] == (1, 2) and got["nested"]["l"] == [None, True]
    assert isinstance(got["ordered"], collections.OrderedDict)
    assert got["nested"]["dtype"] is torch.float32
    back = fastnn.load(path)  # and back into fastnn
    assert back["nested"]["dtype"] == np.float32
    for k in ("f32", "i64", "b", "transposed"):
        assert isinstance(back[k], fastnn.Tensor)
        np.testing.assert_array_equal(_arr(back[k]), _arr(obj[k]))


def test_torch_saved_state_dict_and_checkpoint_load_in_fastnn(tmp_path):
    torch = _torch()
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(tm.parameters(), lr=1e-3)
    tm(torch.randn(3, 4)).sum().backward()
    opt.step()
    torch.save(tm.state_dict(), tmp_path / "sd.pt")
    torch.save({"model": tm.state_dict(), "optimizer": opt.state_dict(), "epoch": 5,
                "note": "hello", "best": 0.5}, tmp_path / "ck.pth")
    sd = fastnn.load(tmp_path / "sd.pt")
    assert list(sd) == list(tm.state_dict())
    fm = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    fm.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with torch.no_grad(), fastnn.no_grad():
        np.testing.assert_allclose(fm(fastnn.tensor(x))._data, tm(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    ck = fastnn.load(tmp_path / "ck.pth", map_location="cpu")
    assert ck["epoch"] == 5 and ck["note"] == "hello" and ck["best"] == 0.5
    st = opt.state_dict()
    assert ck["optimizer"]["param_groups"][0]["lr"] == st["param_groups"][0]["lr"]
    assert ck["optimizer"]["param_groups"][0]["betas"] == st["param_groups"][0]["betas"]
    for i, s in st["state"].items():
        for k, v in s.items():
            assert isinstance(ck["optimizer"]["state"][i][k], fastnn.Tensor)
            np.testing.assert_array_equal(_arr(ck["optimizer"]["state"][i][k]), v.numpy())
    with open(tmp_path / "ck.pth", "rb") as f:  # a file object, and a BytesIO
        assert fastnn.load(f)["epoch"] == 5
    buf = io.BytesIO()
    torch.save(tm.state_dict(), buf)
    buf.seek(0)
    assert set(fastnn.load(buf)) == set(tm.state_dict())


def test_torch_views_sharing_a_storage_come_out_right(tmp_path):
    torch = _torch()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"base": base, "rows": base[1:3], "cols": base[:, 2:5:2], "t": base.t(),
           "elem": base[3, 4], "flat": base.view(-1)[5:17], "expanded": base[0:1].expand(3, 6),
           "p": torch.nn.Parameter(torch.ones(2))}
    torch.save(obj, tmp_path / "views.pt")
    got = fastnn.load(tmp_path / "views.pt")
    for k, v in obj.items():
        g = _arr(got[k])
        assert g.shape == tuple(v.shape), k
        np.testing.assert_array_equal(g, v.detach().numpy(), err_msg=k)
    assert got["p"].requires_grad
    # views share memory, as they do in torch
    assert np.shares_memory(_arr(got["base"]), _arr(got["rows"]))
    assert np.shares_memory(_arr(got["base"]), _arr(got["t"]))


def test_torch_half_bfloat16_and_int_dtypes(tmp_path):
    torch = _torch()
    obj = {"h": torch.tensor([1.5, -2.0], dtype=torch.float16),
           "bf": torch.tensor([1.0, 3.140625, -0.5], dtype=torch.bfloat16),
           "i8": torch.tensor([-3, 4], dtype=torch.int8),
           "i16": torch.tensor([300], dtype=torch.int16),
           "b": torch.tensor([True, False]), "c": torch.tensor([1 + 2j])}
    torch.save(obj, tmp_path / "d.pt")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = fastnn.load(tmp_path / "d.pt")
    assert any("bfloat16" in str(x.message) for x in w)
    assert _arr(got["bf"]).dtype == np.float32
    np.testing.assert_array_equal(_arr(got["bf"]), [1.0, 3.140625, -0.5])
    assert _arr(got["h"]).dtype in (np.float16, np.float32)
    np.testing.assert_array_equal(_arr(got["h"]), [1.5, -2.0])
    for k in ("i8", "i16", "b", "c"):
        assert _arr(got[k]).dtype == obj[k].numpy().dtype
        np.testing.assert_array_equal(_arr(got[k]), obj[k].numpy())


def _zip_with_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_malicious_pickles_are_refused_without_running(tmp_path):
    sentinel = tmp_path / "pwned"
    cmd = f"touch {sentinel}"
    evil = [pickle.dumps({"w": _Evil(cmd)}, protocol=2),
            pickle.dumps(_Evil(cmd), protocol=4),
            b"cbuiltins\neval\n(Vopen(" + repr(str(sentinel)).encode() + b", 'w')\ntR.",
            b"\x80\x02cposix\nsystem\nq\x00X" + len(cmd).to_bytes(4, "little") + cmd.encode()
            + b"\x85R."]
    for i, payload in enumerate(evil):
        path = tmp_path / f"evil{i}.pt"
        _zip_with_pickle(path, payload)
        for weights_only in (True, False):
            with pytest.raises(fastnn.UnsafeCheckpointError if hasattr(
                    fastnn, "UnsafeCheckpointError") else serialization.UnsafeCheckpointError,
                               match=r"refuses|global"):
                fastnn.load(path, weights_only=weights_only)
        assert not sentinel.exists()
    with pytest.raises(serialization.CheckpointError) as e:
        fastnn.load(tmp_path / "evil0.pt")
    assert "system" in str(e.value)  # the message names the refused global


def test_the_pt_loader_checks_storage_bounds_and_references(tmp_path):
    # a tensor that claims more elements than its storage holds is refused, not read past
    good = io.BytesIO()
    fastnn.save({"w": fastnn.ones(4)}, good, format="pt")
    with zipfile.ZipFile(io.BytesIO(good.getvalue())) as zf:
        names = zf.namelist()
        records = {n: zf.read(n) for n in names}
    prefix = names[0].split("/")[0] + "/"
    pkl = records[prefix + "data.pkl"]
    bad = pkl.replace(b"K\x04\x85", b"K\x40\x85")  # size (4,) -> (64,)
    assert bad != pkl
    path = tmp_path / "oob.pt"
    with zipfile.ZipFile(path, "w") as zf:
        for n in names:
            zf.writestr(n, bad if n.endswith("data.pkl") else records[n])
    with pytest.raises(serialization.CheckpointError, match="corrupt"):
        fastnn.load(path)
    # a storage record missing from the archive
    with zipfile.ZipFile(tmp_path / "missing.pt", "w") as zf:
        for n in names:
            if "/data/" not in n:
                zf.writestr(n, records[n])
    with pytest.raises(serialization.CheckpointError, match="lacks"):
        fastnn.load(tmp_path / "missing.pt")


def test_pt_file_objects_and_map_location(tmp_path):
    torch = _torch()
    buf = io.BytesIO()
    fastnn.save({"w": fastnn.arange(3)}, buf, format="pt")
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["w"].tolist() == [0, 1, 2]
    buf.seek(0)
    got = fastnn.load(buf, map_location=lambda storage, loc: storage)
    assert _arr(got["w"]).tolist() == [0, 1, 2]
    buf.seek(0)
    assert _arr(fastnn.load(buf, map_location={"cuda:0": "cpu"})["w"]).tolist() == [0, 1, 2]
    buf.seek(0)
    assert _arr(fastnn.load(buf, map_location=torch.device("cpu"))["w"]).tolist() == [0, 1, 2]
    with open(tmp_path / "f.pt", "wb") as f:  # a file object named .pt writes the .pt format
        fastnn.save({"w": fastnn.ones(2)}, f)
    assert torch.load(tmp_path / "f.pt", weights_only=True)["w"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="never"):
        fastnn.load(tmp_path / "f.pt", pickle_module=pickle)


def test_torch_legacy_format_loads_safely(tmp_path):
    torch = _torch()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    lin = torch.nn.Linear(3, 2)
    obj = {"sd": lin.state_dict(), "base": base, "t": base.t(), "rows": base[1:3],
           "ids": torch.tensor([1, 2]), "epoch": 3, "name": "x", "shape": base.shape}
    torch.save(obj, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    got = fastnn.load(tmp_path / "legacy.pt")
    for k in ("base", "t", "rows", "ids"):
        np.testing.assert_array_equal(_arr(got[k]), obj[k].numpy(), err_msg=k)
        assert _arr(got[k]).dtype == obj[k].numpy().dtype
    assert got["epoch"] == 3 and got["name"] == "x" and tuple(got["shape"]) == (4, 6)
    fm = nn.Linear(3, 2)
    fm.load_state_dict(got["sd"])
    np.testing.assert_array_equal(_arr(fm.state_dict()["weight"]), lin.weight.detach().numpy())
    assert np.shares_memory(_arr(got["base"]), _arr(got["t"]))
    # a whole pickled module is refused, naming what it is
    torch.save(lin, tmp_path / "module.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(serialization.UnsafeCheckpointError, match="Linear"):
        fastnn.load(tmp_path / "module.pt")
    blob = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[:-10])
    with pytest.raises(serialization.CheckpointError, match="truncated"):
        fastnn.load(tmp_path / "cut.pt")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_and_whole_modules_are_refused_clearly(tmp_path):
    torch = _torch()
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(serialization.UnsafeCheckpointError, match="torch.nn.modules.linear"):
        fastnn.load(tmp_path / "module.pt")
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(scripted, str(tmp_path / "script.pt"))
    with pytest.raises(serialization.CheckpointError, match="TorchScript"):
        fastnn.load(tmp_path / "script.pt")


# ---------------------------------------------------------------- safetensors
def test_safetensors_round_trip_and_helpers(tmp_path):
    stnp = pytest.importorskip("safetensors.numpy")
    sd = {"a": fastnn.randn(3, 4), "b": np.arange(5, dtype=np.int64),
          "c": fastnn.tensor(np.arange(6.0).reshape(2, 3).T)}
    fastnn.save(sd, tmp_path / "m.safetensors")
    raw = stnp.load_file(str(tmp_path / "m.safetensors"))  # a real safetensors file
    for k in sd:
        np.testing.assert_array_equal(raw[k], _arr(sd[k]))
    got = fastnn.load(tmp_path / "m.safetensors")
    assert all(isinstance(v, fastnn.Tensor) for v in got.values())
    for k in sd:
        np.testing.assert_array_equal(_arr(got[k]), _arr(sd[k]))
    # explicit helpers, with metadata, and files written by safetensors itself
    serialization.save_file(sd, tmp_path / "h.safetensors", metadata={"step": "3"})
    got = serialization.load_file(tmp_path / "h.safetensors")
    np.testing.assert_array_equal(_arr(got["b"]), np.arange(5))
    stnp.save_file({"x": np.ones((2, 2), np.float32)}, str(tmp_path / "ext.bin"))
    np.testing.assert_array_equal(_arr(fastnn.load(tmp_path / "ext.bin")["x"]), np.ones((2, 2)))
    buf = io.BytesIO()
    fastnn.save(sd, buf, format="safetensors")
    buf.seek(0)
    np.testing.assert_array_equal(_arr(fastnn.load(buf)["a"]), _arr(sd["a"]))


def test_safetensors_written_by_torch_including_bfloat16(tmp_path):
    torch = _torch()
    st = pytest.importorskip("safetensors.torch")
    t = {"w": torch.randn(3, 2), "bf": torch.tensor([1.0, -2.5], dtype=torch.bfloat16)}
    st.save_file(t, str(tmp_path / "t.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = fastnn.load(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(_arr(got["w"]), t["w"].numpy())
    np.testing.assert_array_equal(_arr(got["bf"]), [1.0, -2.5])
    fastnn.save({"w": fastnn.ones(2)}, tmp_path / "f.safetensors")
    assert st.load_file(str(tmp_path / "f.safetensors"))["w"].tolist() == [1.0, 1.0]


def test_tensors_over_the_same_memory_are_written_once(tmp_path):
    torch = _torch()
    w = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    tied = {"wte.weight": fastnn.Tensor(w), "lm_head.weight": fastnn.Tensor(w),
            "row": fastnn.Tensor(w[1])}
    fastnn.save(tied, tmp_path / "tied.pt")
    got = torch.load(tmp_path / "tied.pt", weights_only=True)
    assert got["wte.weight"].data_ptr() == got["lm_head.weight"].data_ptr()  # one storage
    np.testing.assert_array_equal(got["row"].numpy(), w[1])
    back = fastnn.load(tmp_path / "tied.pt")
    assert back["wte.weight"] is back["lm_head.weight"]
    fastnn.save(tied, tmp_path / "tied.npz")
    with np.load(tmp_path / "tied.npz") as z:
        assert len(z.files) == 3  # the index, one copy of w, the row
    back = fastnn.load(tmp_path / "tied.npz")
    assert back["wte.weight"] is back["lm_head.weight"]
    np.testing.assert_array_equal(_arr(back["row"]), w[1])
