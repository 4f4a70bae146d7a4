"""Model checkpoints: one writer and one reader for every model in fastnn.models.

    save_checkpoint(model, "runs/mlp.npz", test_accuracy=0.98)     # any model, plus meta entries
    model, meta = load_checkpoint("runs/mlp.npz")                  # whatever kind it holds
    model, meta = load_checkpoint("gpt.npz", kind="gpt")           # or insist on a kind

A checkpoint is a fastnn.save .npz (arrays only, never pickle) whose `kind` entry names the model
("fastnn-mlp", "fastnn-gpt", "fastnn-diffusion", "fastnn-cnn"), next to what rebuilds it:

    mlp        the state dict's keys as they are (net.0.weight, ...); meta.sizes, meta.activation,
               meta.dropout; meta.<name> for each extra meta entry
    gpt        model.<key> (the state dict), config.json (GPTConfig), vocab.chars (the tokenizer's
               code points); for training runs optim.state.<i>.<name> and
               optim.param_groups.json (the optimizer), train.json (step, run length, rng states)
    diffusion  config.<field> (DiffusionConfig), model.<key> (the denoiser's state dict);
               meta.<name> for extra meta entries
    cnn        model.<key> (the state dict, BatchNorm's running statistics included);
               config.in_channels, config.image_size, config.num_classes, config.channels,
               config.dropout (what CNN(...) takes); meta.<name> for extra meta entries

Checkpoints written before the `kind` entry existed still load: an MLP one is known by its
meta.sizes, a GPT one by config.json and vocab.chars.

load_checkpoint returns (model, meta): model is the MLP, GPT or CNN module, or for diffusion the
Diffusion (the denoiser with its noise schedule and samplers); meta is a dict with "kind" and
  mlp        the meta.* entries (numpy arrays): sizes, activation, dropout, and the extras
  gpt        "tokenizer" (text.CharTokenizer), "optimizer_state" (for optimizer.load_state_dict)
             and "train_state" (a dict), the last two None in a checkpoint of weights only
  diffusion  the meta.* entries
  cnn        the meta.* entries (data, classes, seed, test_accuracy, ... as written)
Errors: FileNotFoundError for a missing file, CheckpointError (a ValueError) for a file that is
not a checkpoint of the kind asked for.
"""
import json
import os

import numpy as np

from .. import text
from ..serialization import CheckpointError, load, save
from .cnn import CNN
from .diffusion import Diffusion
from .gpt import GPT, GPTConfig
from .mlp import MLP

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_kind", "KINDS"]

KINDS = ("mlp", "gpt", "diffusion", "cnn")


def _kind_entry(kind):
    return np.array(f"fastnn-{kind}")


def _meta_entries(meta):
    return {f"meta.{k}": np.asarray(v) for k, v in meta.items()}


def _meta_of(state):
    return {k[len("meta."):]: v for k, v in state.items() if k.startswith("meta.")}


def _prefixed(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# ---------------------------------------------------------------- writing
def save_checkpoint(model, path, **meta):
    """Write `model` (an MLP, GPT, Diffusion or CNN) to `path` with what rebuilds it.

    meta: extra entries. For a GPT: tokenizer (required: the text.CharTokenizer it reads with),
    optimizer and train_state (a JSON-able dict), to resume training. For the others: any
    name=value (numbers, strings, arrays), returned in meta by load_checkpoint."""
    if isinstance(model, GPT):
        state = _gpt_state(model, **meta)
    elif isinstance(model, MLP):
        state = dict(model.state_dict())
        state.update({"meta.sizes": np.array(model.sizes, np.int64),
                      "meta.activation": np.array(model.activation),
                      "meta.dropout": np.array(float(model.dropout))})
        state.update(_meta_entries(meta))
        state["kind"] = _kind_entry("mlp")
    elif isinstance(model, Diffusion):
        state = model.state()  # its own kind entry, config.* and model.*
        state.update(_meta_entries(meta))
    elif isinstance(model, CNN):
        state = {"model." + k: v for k, v in model.state_dict().items()}
        state.update({"config.in_channels": np.array(model.in_channels, np.int64),
                      "config.image_size": np.array(model.image_size, np.int64),
                      "config.num_classes": np.array(model.num_classes, np.int64),
                      "config.channels": np.array(model.channels, np.int64),
                      "config.dropout": np.array(float(model.dropout))})
        state.update(_meta_entries(meta))
        state["kind"] = _kind_entry("cnn")
    else:
        raise TypeError(f"save_checkpoint: expected an MLP, GPT, Diffusion or CNN, got "
                        f"{type(model).__name__}")
    save(state, path)


def _gpt_state(model, tokenizer=None, optimizer=None, train_state=None):
    if tokenizer is None:
        raise TypeError("save_checkpoint: a GPT checkpoint needs tokenizer=, the text it reads "
                        "is encoded with")
    ck = {"model." + k: v for k, v in model.state_dict().items()}
    ck["vocab.chars"] = tokenizer.state_dict()["chars"]
    ck["config.json"] = np.array(json.dumps(model.config.to_dict()))
    if optimizer is not None:
        sd = optimizer.state_dict()
        for i, st in sd["state"].items():
            for k, v in st.items():
                ck[f"optim.state.{i}.{k}"] = np.asarray(v)
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                  for g in sd["param_groups"]]
        ck["optim.param_groups.json"] = np.array(json.dumps(groups))
    if train_state is not None:
        ck["train.json"] = np.array(json.dumps(train_state))
    ck["kind"] = _kind_entry("gpt")
    return ck


# ---------------------------------------------------------------- reading
def checkpoint_kind(state):
    """The model kind of a loaded checkpoint dict ("mlp", "gpt", "diffusion", "cnn"), or None."""
    if "kind" in state:
        name = str(state["kind"])
        kind = name[len("fastnn-"):] if name.startswith("fastnn-") else name
        return kind if kind in KINDS else None
    if "meta.sizes" in state:  # MLP checkpoints before the kind entry
        return "mlp"
    if "config.json" in state and "vocab.chars" in state:  # GPT checkpoints before it
        return "gpt"
    return None


def load_checkpoint(path, kind=None):
    """(model, meta) from a checkpoint written by save_checkpoint; see the module docstring.
    kind: None (whatever the file holds) or "mlp" / "gpt" / "diffusion" / "cnn" (anything else
    in the file is a CheckpointError)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"load_checkpoint: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    state = load(path)
    found = checkpoint_kind(state)
    if found is None:
        raise CheckpointError(f"{path} is not a fastnn model checkpoint (it has no kind entry "
                              f"and is neither an MLP nor a GPT one); write one with "
                              f"`fastnn train ...` or fastnn.models.save_checkpoint")
    if kind is not None and found != kind:
        raise CheckpointError(f"{path} holds a {found} model, not a {kind} one")
    try:
        return _READERS[found](state, path)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the {found} model: {e}") from e


def _read_mlp(state, path):
    meta = _meta_of(state)
    model = MLP(meta["sizes"].tolist(), str(meta.get("activation", "relu")),
                float(meta.get("dropout", 0.0)))
    model.load_state_dict({k: v for k, v in state.items()
                           if not k.startswith("meta.") and k != "kind"})
    meta["kind"] = "mlp"
    return model, meta


def _read_gpt(state, path):
    missing = [k for k in ("config.json", "vocab.chars") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a GPT checkpoint (it lacks {missing}); write one "
                              f"with `fastnn train gpt`")
    model = GPT(GPTConfig(**json.loads(str(state["config.json"]))))
    model.load_state_dict(_prefixed(state, "model."))
    meta = {"kind": "gpt",
            "tokenizer": text.CharTokenizer.from_state_dict({"chars": state["vocab.chars"]}),
            "optimizer_state": (_optimizer_state(state) if "optim.param_groups.json" in state
                                else None),
            "train_state": (json.loads(str(state["train.json"])) if "train.json" in state
                            else None)}
    return model, meta


def _optimizer_state(state):
    """The optimizer's state_dict back from its optim.* entries."""
    groups = json.loads(str(state["optim.param_groups.json"]))
    for g in groups:
        g["betas"] = tuple(g["betas"])
    per_param = {}
    for k, v in state.items():
        if k.startswith("optim.state."):
            i, name = k[len("optim.state."):].split(".", 1)
            per_param.setdefault(int(i), {})[name] = int(v) if name == "step" else v
    return {"state": per_param, "param_groups": groups}


def _read_diffusion(state, path):
    model = Diffusion.from_state(state, path)
    meta = _meta_of(state)
    meta["kind"] = "diffusion"
    return model, meta


def _read_cnn(state, path):
    missing = [k for k in ("config.in_channels", "config.image_size", "config.num_classes",
                           "config.channels") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a CNN checkpoint (it lacks {missing}); write one "
                              f"with `fastnn train cnn`")
    model = CNN(int(state["config.in_channels"]), int(state["config.image_size"]),
                int(state["config.num_classes"]), state["config.channels"].tolist(),
                float(state.get("config.dropout", 0.0)))
    model.load_state_dict(_prefixed(state, "model."))
    model.eval()
    meta = _meta_of(state)
    meta["kind"] = "cnn"
    return model, meta


_READERS = {"mlp": _read_mlp, "gpt": _read_gpt, "diffusion": _read_diffusion, "cnn": _read_cnn}
