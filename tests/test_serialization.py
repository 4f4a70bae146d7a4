"""Checkpoints: round trips (with Module state dicts), atomic writes, and refusing pickled,
truncated, corrupt or foreign files with a clear error."""
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import nn


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
    fresh = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 3))
    fresh.load_state_dict({k: v for k, v in loaded.items() if not k.startswith("meta.")})
    for k, v in model.state_dict().items():
        assert fresh.state_dict()[k].dtype == np.float32
        np.testing.assert_array_equal(fresh.state_dict()[k], v)
    x = fastnn.randn(2, 4)
    with fastnn.use_backend("numpy"), fastnn.no_grad():
        np.testing.assert_array_equal(model(x).data, fresh(x).data)


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


def test_refuses_torch_style_zip(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(fastnn.CheckpointError, match="PyTorch"):
        fastnn.load(path)


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
    damaged[200:260] = b"\xff" * 60  # inside the first array's data
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


def test_save_rejects_non_mappings(tmp_path):
    with pytest.raises(TypeError, match="mapping"):
        fastnn.save([np.ones(2)], tmp_path / "x.npz")
