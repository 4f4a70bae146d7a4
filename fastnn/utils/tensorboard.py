"""fastnn.utils.tensorboard.SummaryWriter: torch.utils.tensorboard's logging calls, without
TensorBoard. Each call appends one JSON line to `<log_dir>/events.jsonl` (scalars, histograms'
summary statistics, texts, hyperparameters), a format any script can read back:

    writer = SummaryWriter("runs/exp1"); writer.add_scalar("loss", 0.5, step); writer.close()
    [json.loads(l) for l in open("runs/exp1/events.jsonl")]

Images, figures, graphs, audio and embeddings are accepted and recorded by shape only."""
import json
import os
import socket
import time
from datetime import datetime

import numpy as np

__all__ = ["SummaryWriter"]


def _number(v):
    if hasattr(v, "_data"):
        v = v._data
    return float(np.asarray(v).reshape(()))


class SummaryWriter:
    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10, flush_secs=120,
                 filename_suffix=""):
        if log_dir is None:   # torch's default: runs/<date>_<host><comment>
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = str(log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        self._path = os.path.join(self.log_dir, f"events{filename_suffix}.jsonl")
        self._fh = open(self._path, "a")

    def get_logdir(self):
        return self.log_dir

    def _write(self, kind, tag, step, walltime, **fields):
        if self._fh is None:
            raise RuntimeError("SummaryWriter: the writer is closed")
        rec = {"kind": kind, "tag": tag, "step": None if step is None else int(step),
               "wall_time": time.time() if walltime is None else walltime}
        rec.update(fields)
        self._fh.write(json.dumps(rec) + "\n")

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None,
                   new_style=False, double_precision=False):
        self._write("scalar", tag, global_step, walltime, value=_number(scalar_value))

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        for k, v in tag_scalar_dict.items():
            self._write("scalar", f"{main_tag}/{k}", global_step, walltime, value=_number(v))

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None,
                      max_bins=None):
        a = np.asarray(values._data if hasattr(values, "_data") else values, np.float64)
        self._write("histogram", tag, global_step, walltime, min=float(a.min()),
                    max=float(a.max()), mean=float(a.mean()), std=float(a.std()),
                    num=int(a.size))

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        self._write("text", tag, global_step, walltime, text=str(text_string))

    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None,
                    run_name=None, global_step=None):
        self._write("hparams", run_name or "", global_step, None,
                    hparams={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                             for k, v in hparam_dict.items()},
                    metrics={k: _number(v) for k, v in metric_dict.items()})

    def _shaped(self, kind, tag, value, global_step, walltime):
        shape = list(np.shape(value._data if hasattr(value, "_data") else value))
        self._write(kind, tag, global_step, walltime, shape=shape)

    def add_image(self, tag, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        self._shaped("image", tag, img_tensor, global_step, walltime)

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW"):
        self._shaped("images", tag, img_tensor, global_step, walltime)

    def add_figure(self, tag, figure, global_step=None, close=True, walltime=None):
        self._write("figure", tag, global_step, walltime)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        self._write("graph", type(model).__name__, None, None)

    def add_embedding(self, mat, metadata=None, label_img=None, global_step=None, tag="default",
                      metadata_header=None):
        self._shaped("embedding", tag, mat, global_step, None)

    def add_audio(self, tag, snd_tensor, global_step=None, sample_rate=44100, walltime=None):
        self._shaped("audio", tag, snd_tensor, global_step, walltime)

    def add_pr_curve(self, tag, labels, predictions, global_step=None, num_thresholds=127,
                     weights=None, walltime=None):
        self._shaped("pr_curve", tag, predictions, global_step, walltime)

    def flush(self):
        if self._fh is not None:
            self._fh.flush()

    def close(self):
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
