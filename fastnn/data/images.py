"""Photographs as float arrays: read PNG/JPEG (anything Pillow opens) into (C, H, W) float32 in
[0, 1], resize, crop, and write PNG/JPEG back.

    img = load_image("photo.jpg", size=256)       # centre square, resized to 256 x 256, RGB
    img = load_image("sample:china")              # scikit-learn's photograph, no file needed
    save_image("out.png", img)

"sample:china" and "sample:flower" name the two photographs that scikit-learn ships
(sklearn.datasets.load_sample_image), so a lesson runs with no image files at hand.

Errors: FileNotFoundError for a missing file, ValueError for a file Pillow cannot read, a bad
size or an array that is not an image.
"""
import os

import numpy as np

from ..errors import require

__all__ = ["load_image", "save_image", "resize_image", "center_crop", "SAMPLE_IMAGES"]

# "sample:<name>" -> the file name scikit-learn's load_sample_image takes
SAMPLE_IMAGES = {"china": "china.jpg", "flower": "flower.jpg"}


def _check_size(size, name="size"):
    """size as (height, width): an int n is (n, n); each side an int >= 1."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
        ok = all(float(s) == int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a (height, width) pair of ints, got "
                         f"{size!r}") from None
    if not ok or h < 1 or w < 1:
        raise ValueError(f"{name} must be at least 1 pixel on each side, got {size!r}")
    return h, w


def _to_pil(img):
    """A (C, H, W) float array in [0, 1] (C = 1, 3 or 4) as a Pillow image (values clipped)."""
    from PIL import Image
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] not in (1, 3, 4) or 0 in a.shape:
        raise ValueError(f"an image array must be (C, H, W) with C = 1, 3 or 4 (or (H, W)), got "
                         f"shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"an image array must hold numbers, got dtype {a.dtype}")
    a = np.nan_to_num(a.astype(np.float64), nan=0.0)
    u8 = np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)
    if u8.shape[0] == 1:
        return Image.fromarray(u8[0], mode="L")
    return Image.fromarray(np.ascontiguousarray(u8.transpose(1, 2, 0)),
                           mode="RGB" if u8.shape[0] == 3 else "RGBA")


def _from_pil(pil, channels, dtype):
    pil = pil.convert("L" if channels == 1 else "RGB")
    a = np.asarray(pil, dtype=np.float32) / np.float32(255)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return np.ascontiguousarray(a, dtype=dtype)


def _sample_image(name):
    """scikit-learn's photograph `name` as (H, W, 3) uint8. The JPEG is read from the installed
    package directly: importing sklearn.datasets (for load_sample_image, which decodes both
    photographs) takes seconds."""
    import importlib.util
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        require("sklearn", "the sample photographs")
    for folder in spec.submodule_search_locations or ():
        path = os.path.join(folder, "datasets", "images", SAMPLE_IMAGES[name])
        if os.path.isfile(path):
            from PIL import Image
            with Image.open(path) as f:
                return np.asarray(f.convert("RGB"))
    from sklearn.datasets import load_sample_image      # a layout this code does not know
    return load_sample_image(SAMPLE_IMAGES[name])


def center_crop(img, size=None):
    """The central (h, w) window of a (C, H, W) array; size None: the largest square."""
    a = np.asarray(img)
    H, W = a.shape[-2:]
    h, w = (min(H, W),) * 2 if size is None else _check_size(size)
    if h > H or w > W:
        raise ValueError(f"center_crop: a {h}x{w} window does not fit in a {H}x{W} image")
    top, left = (H - h) // 2, (W - w) // 2
    return a[..., top:top + h, left:left + w]


def resize_image(img, size):
    """A (C, H, W) float image resized to size (int: square; or (height, width)), with
    Pillow's Lanczos filter (antialiased when shrinking); values stay in [0, 1]."""
    from PIL import Image
    h, w = _check_size(size)
    a = np.asarray(img)
    if a.ndim != 3:
        raise ValueError(f"resize_image: expected a (C, H, W) array, got shape {a.shape}")
    # per channel in float ("F" mode) so nothing is rounded to 8 bits on the way
    out = [np.asarray(Image.fromarray(np.asarray(c, np.float32), mode="F")
                      .resize((w, h), Image.Resampling.LANCZOS)) for c in a]
    return np.clip(np.stack(out), 0.0, 1.0).astype(a.dtype if a.dtype.kind == "f" else np.float32)


def load_image(source, size=None, crop=True, channels=3, dtype=np.float32):
    """Read an image file (PNG, JPEG, anything Pillow opens) or "sample:china" /
    "sample:flower" as a (channels, H, W) array in [0, 1].

    size: None keeps the pixels as they are; an int n gives n x n, cropping the centre square
    first when crop is True (else stretching); a (height, width) pair resizes to it exactly.
    channels: 3 (RGB) or 1 (grey)."""
    require("PIL", "reading images")
    from PIL import Image, UnidentifiedImageError
    if channels not in (1, 3):
        raise ValueError(f"load_image: channels must be 1 or 3, got {channels!r}")
    if size is not None:
        _check_size(size)
    source = os.fspath(source)
    if source.startswith("sample:"):
        name = source[len("sample:"):]
        if name not in SAMPLE_IMAGES:
            raise ValueError(f"unknown sample image {source!r}; the samples are "
                             f"{', '.join('sample:' + k for k in SAMPLE_IMAGES)}")
        pil = Image.fromarray(_sample_image(name))
    else:
        if not os.path.exists(source):
            raise FileNotFoundError(f"image file not found: {source}")
        if os.path.isdir(source):
            raise IsADirectoryError(f"{source} is a folder, not an image file")
        try:
            with Image.open(source) as f:
                f.load()
                pil = f.copy()
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise ValueError(f"{source} is not an image Pillow can read ({e})") from None
    img = _from_pil(pil, channels, dtype)
    if size is None:
        return img
    if isinstance(size, (int, np.integer)) and crop:
        img = center_crop(img)
    return np.ascontiguousarray(resize_image(img, size), dtype=dtype)


def save_image(path, img):
    """Write a (C, H, W) (or (H, W)) array in [0, 1] to path; the format follows the file name
    (.png, .jpg, ...). Values outside [0, 1] are clipped. The folder is created if needed."""
    require("PIL", "writing images")
    pil = _to_pil(img)
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jpg", ".jpeg") and pil.mode == "RGBA":
        pil = pil.convert("RGB")
    try:
        pil.save(path)
    except (KeyError, ValueError) as e:   # Pillow: unknown extension
        raise ValueError(f"cannot write {path}: Pillow knows no image format for the name "
                         f"({e}); use .png or .jpg") from None
    return path
