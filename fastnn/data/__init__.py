"""fastnn.data: the digits data set, the "shapes to objects" images (shapes.py), photographs
read and written through Pillow (images.py), and (re-exported from fastnn.utils.data,
PyTorch's home for them) DataLoader and TensorDataset."""
from .digits import Digits, load_digits
from .images import load_image, save_image
from .loader import DataLoader, TensorDataset
from .shapes import ShapesDataset, make_shapes

__all__ = ["DataLoader", "TensorDataset", "load_digits", "Digits", "ShapesDataset",
           "make_shapes", "load_image", "save_image"]
