"""fastnn.models: the lessons' models (Perceptron and MLP here; each module also holds its
`fastnn train/eval` command)."""
from .mlp import MLP
from .perceptron import Perceptron

__all__ = ["MLP", "Perceptron"]
