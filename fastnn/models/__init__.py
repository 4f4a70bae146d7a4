"""fastnn.models: the lessons' models, and one checkpoint format for all of them.

    from fastnn.models import GPT, GPTConfig, MLP, Perceptron, Diffusion, DiffusionConfig, CNN
    save_checkpoint(model, "model.npz", ...);  model, meta = load_checkpoint("model.npz")

Each model has its module (perceptron.py, mlp.py, gpt.py, diffusion.py, cnn.py); the `fastnn
train / eval / generate / sample` commands for them are in the *_cli.py modules (perceptron.py
holds its own), dispatched by fastnn/cli.py.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .cnn import CNN
from .diffusion import Denoiser, Diffusion, DiffusionConfig, NoiseSchedule
from .gpt import GPT, GPTConfig
from .mlp import MLP
from .perceptron import Perceptron

__all__ = ["Perceptron", "MLP", "GPT", "GPTConfig", "Diffusion", "DiffusionConfig", "Denoiser",
           "NoiseSchedule", "CNN", "save_checkpoint", "load_checkpoint"]
