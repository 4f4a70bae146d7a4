"""fastnn.models: the lessons' models, and one checkpoint format for all of them.

    from fastnn.models import GPT, GPTConfig, MLP, Perceptron, Diffusion, DiffusionConfig
    save_checkpoint(model, "model.npz", ...);  model, meta = load_checkpoint("model.npz")

Each model has its module (perceptron.py, mlp.py, gpt.py, diffusion.py); the `fastnn train /
eval / generate / sample` commands for them are in the *_cli.py modules (perceptron.py holds its
own), dispatched by fastnn/cli.py.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .diffusion import Denoiser, Diffusion, DiffusionConfig, NoiseSchedule
from .gpt import GPT, GPTConfig
from .mlp import MLP
from .perceptron import Perceptron

__all__ = ["Perceptron", "MLP", "GPT", "GPTConfig", "Diffusion", "DiffusionConfig", "Denoiser",
           "NoiseSchedule", "save_checkpoint", "load_checkpoint"]
