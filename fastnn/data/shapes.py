""""Shapes to objects": procedurally drawn 32x32 RGB images of six object classes, each built from
primitive shapes, generated with numpy from a seed (no download, no Pillow).

    images, labels, attrs = make_shapes(10000, seed=0)      # (n,3,32,32) float32 in [0,1], int64
    ds = ShapesDataset(10000, seed=0, split="train")         # a Dataset of (image Tensor, label)
    images, labels, attrs = make_shapes(16, seed=1, classes="casa", colors="rojo",
                                        backgrounds="rayas")  # prompt-style control

Classes (CLASSES, Spanish CLASSES_ES): face, house, tree, car, fish, flower. Every object is a few
primitives (circles, ellipses, rectangles, triangles, arcs, line segments) drawn in the object's
own frame, then placed with a random scale, rotation and position over a background texture
(plain, stripes at a random angle, a lattice of dots, a noisy colour gradient). Some parts come in
variants (a round or a square window, a round or a pine canopy), and a small distractor shape
(circle, square or triangle) appears in some images, so "contains a circle" is not fixed by the
class.

Drawing: each primitive is a signed distance field evaluated on the pixel grid for a whole batch
of images at once; its coverage of a pixel is clip(0.5 - distance_in_pixels, 0, 1), a one-pixel
anti-aliased edge, and parts are alpha-composited in order.

attributes (a dict of arrays, one entry per image), the primitive-level facts the probes test:
    contains_circle     bool: a filled circle of radius >= 2 px is visible (head, wheel, round
                        window, round canopy, round petals, or a circle distractor)
    edge_orientation    int 0..3: the dominant edge orientation in the central 16x16 patch,
                        measured on the finished image (structure tensor of its luminance):
                        EDGE_ORIENTATIONS[k], 0 horizontal, 1 rising diagonal "/", 2 vertical,
                        3 falling diagonal "\\"
    background          int: index in BACKGROUNDS (plain, stripes, dots, gradient)
    bg_color            int: the background's named colour (index in COLORS) where
                        make_shapes was asked for one (bg_colors), else -1 (a random hue)
    color               int: the object's main colour, index in COLORS (a hue bin)
    scale, rotation, x, y   float: the object's placement (rotation in degrees)
    distractor          int: 0 none, 1 circle, 2 square, 3 triangle
"""
import numpy as np

from ..tensor import Tensor
from ..threads import get_num_threads
from ..utils.data import Dataset

__all__ = ["make_shapes", "ShapesDataset", "CLASSES", "CLASSES_ES", "COLORS", "COLORS_ES",
           "BACKGROUNDS", "BACKGROUNDS_ES", "EDGE_ORIENTATIONS", "parse_color",
           "parse_background", "parse_class", "edge_orientation", "SIZE"]

SIZE = 32
CLASSES = ("face", "house", "tree", "car", "fish", "flower")
CLASSES_ES = ("cara", "casa", "árbol", "coche", "pez", "flor")
COLORS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
COLORS_ES = ("rojo", "naranja", "amarillo", "verde", "cian", "azul", "morado", "rosa")
BACKGROUNDS = ("plain", "stripes", "dots", "gradient")
BACKGROUNDS_ES = ("liso", "rayas", "puntos", "degradado")
EDGE_ORIENTATIONS = ("horizontal", "diagonal /", "vertical", "diagonal \\")
DISTRACTORS = ("none", "circle", "square", "triangle")

# hue (0..1), saturation range, value range of each named colour
_PALETTE = {
    "red": (0.0, (0.75, 1.0), (0.7, 1.0)),
    "orange": (0.075, (0.8, 1.0), (0.85, 1.0)),
    "yellow": (0.155, (0.75, 1.0), (0.85, 1.0)),
    "green": (0.33, (0.65, 1.0), (0.55, 0.9)),
    "cyan": (0.5, (0.65, 1.0), (0.75, 1.0)),
    "blue": (0.63, (0.7, 1.0), (0.7, 1.0)),
    "purple": (0.77, (0.6, 0.9), (0.55, 0.85)),
    "pink": (0.9, (0.35, 0.55), (0.9, 1.0)),
}

# other spellings people type (lower case, accents optional)
_COLOR_ALIASES = {"anaranjado": "orange", "naranjo": "orange", "celeste": "cyan",
                  "turquesa": "cyan", "violeta": "purple", "púrpura": "purple",
                  "purpura": "purple", "violet": "purple",
                  "rosado": "pink", "rosada": "pink", "roja": "red", "amarilla": "yellow",
                  "morada": "purple", "teal": "cyan", "magenta": "pink"}
_BG_ALIASES = {"solid": "plain", "uniform": "plain", "liso": "plain", "lisa": "plain",
               "uniforme": "plain", "stripe": "stripes", "striped": "stripes", "rayas": "stripes",
               "rayado": "stripes", "franjas": "stripes", "rayada": "stripes", "dot": "dots",
               "dotted": "dots", "puntos": "dots", "lunares": "dots", "noise": "gradient",
               "degradado": "gradient", "gradiente": "gradient", "ruido": "gradient"}
_CLASS_ALIASES = {"arbol": "tree", "carro": "car", "auto": "car", "automóvil": "car",
                  "pescado": "fish", "rostro": "face", "faces": "face", "houses": "house",
                  "trees": "tree", "cars": "car", "flowers": "flower", "flores": "flower",
                  "caras": "face", "casas": "house", "árboles": "tree", "coches": "car",
                  "peces": "fish"}


def _lookup(value, english, spanish, aliases, what):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= int(value) < len(english):
            return int(value)
        raise ValueError(f"{what} index must be in 0..{len(english) - 1}, got {value}")
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a name or an index, got {type(value).__name__}")
    key = value.strip().lower()
    key = aliases.get(key, key)
    for names in (english, spanish):
        if key in names:
            return names.index(key)
    raise ValueError(f"unknown {what} {value!r}; known: {', '.join(english)} "
                     f"(en español: {', '.join(spanish)})")


def parse_color(name):
    """Index in COLORS of a colour name, English or Spanish ("red", "rojo", "Azul")."""
    return _lookup(name, COLORS, COLORS_ES, _COLOR_ALIASES, "colour")


def parse_background(name):
    """Index in BACKGROUNDS of a background name, English or Spanish ("stripes", "rayas")."""
    return _lookup(name, BACKGROUNDS, BACKGROUNDS_ES, _BG_ALIASES, "background")


def parse_class(name):
    """Index in CLASSES of a class name, English or Spanish ("house", "casa", "árbol")."""
    return _lookup(name, CLASSES, CLASSES_ES, _CLASS_ALIASES, "class")


# ---------------------------------------------------------------- colour helpers
def _hsv_to_rgb(h, s, v):
    """Vectorized HSV -> RGB; h, s, v arrays of equal shape; returns (..., 3) float32."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], -1).astype(np.float32)


def _named_colors(rng, idx):
    """Jittered RGB colours (B, 3) for palette indices idx (B,)."""
    names = [COLORS[i] for i in idx]
    hue = np.array([_PALETTE[c][0] for c in names]) + rng.uniform(-0.025, 0.025, len(idx))
    s_lo, s_hi = np.array([_PALETTE[c][1] for c in names]).T if len(idx) else (0, 0)
    v_lo, v_hi = np.array([_PALETTE[c][2] for c in names]).T if len(idx) else (0, 0)
    s = s_lo + (s_hi - s_lo) * rng.random(len(idx))
    v = v_lo + (v_hi - v_lo) * rng.random(len(idx))
    return _hsv_to_rgb(hue, s, v)


def _fixed(rng, b, h, s, v, jitter=0.04):
    """(B, 3) colours around one HSV colour."""
    return _hsv_to_rgb(h + rng.uniform(-jitter, jitter, b) * 0.5,
                       np.clip(s + rng.uniform(-jitter, jitter, b), 0, 1),
                       np.clip(v + rng.uniform(-2 * jitter, 2 * jitter, b), 0, 1))


# ---------------------------------------------------------------- signed distance fields
# X, Y: (B, H, W) coordinates in the object's frame (y down); parameters: scalars or (B,1,1)
def _hyp(a, b):
    r = a * a + b * b
    return np.sqrt(r, out=r)


def _circle(X, Y, cx, cy, r):
    return _hyp(X - cx, Y - cy) - r


def _ellipse(X, Y, cx, cy, a, b):
    return (_hyp((X - cx) / a, (Y - cy) / b) - 1.0) * np.minimum(a, b)


def _box(X, Y, x0, y0, x1, y1):
    hw, hh = (x1 - x0) * 0.5, (y1 - y0) * 0.5
    dx = np.abs(X - (x0 + x1) * 0.5) - hw
    dy = np.abs(Y - (y0 + y1) * 0.5) - hh
    outside = _hyp(np.maximum(dx, 0), np.maximum(dy, 0))
    return outside + np.minimum(np.maximum(dx, dy), 0)


def _polygon(X, Y, pts):
    """Convex polygon, vertices [(x, y), ...] in either winding: max of the edges' signed
    distances (exact inside and along the edges, which is what the anti-aliasing needs)."""
    n = len(pts)
    cx = sum(p[0] for p in pts) / n
    cy = sum(p[1] for p in pts) / n
    d = None
    for i in range(n):
        (ax, ay), (bx, by) = pts[i], pts[(i + 1) % n]
        nx, ny = by - ay, -(bx - ax)
        length = np.hypot(nx, ny)
        nx, ny = nx / length, ny / length
        sign = -np.sign(nx * (cx - ax) + ny * (cy - ay))   # the centre is inside: negative
        e = sign * (nx * (X - ax) + ny * (Y - ay))
        d = e if d is None else np.maximum(d, e)
    return d


def _segment(X, Y, ax, ay, bx, by, width):
    px, py = X - ax, Y - ay
    vx, vy = bx - ax, by - ay
    t = np.clip((px * vx + py * vy) / (vx * vx + vy * vy), 0, 1)
    return _hyp(px - t * vx, py - t * vy) - width * 0.5


def _arc(X, Y, cx, cy, r, width, below):
    """The part of a ring (radius r, thickness width) below the line y = cy + below."""
    ring = np.abs(_hyp(X - cx, Y - cy) - r) - width * 0.5
    return np.maximum(ring, (cy + below) - Y)


# ---------------------------------------------------------------- the canvas
class _Canvas:
    """A batch of B images being drawn: img (B, 3, H, W); the object's frame per image."""

    def __init__(self, background, scale, rotation, x, y):
        self.img = background
        b, _, h, w = background.shape
        half = h / 2.0
        u = ((np.arange(w, dtype=np.float32) + 0.5) / half - 1.0)[None, None, :]
        v = ((np.arange(h, dtype=np.float32) + 0.5) / half - 1.0)[None, :, None]
        self.u, self.v = u, v
        c = np.cos(np.radians(rotation)).astype(np.float32)[:, None, None]
        s = np.sin(np.radians(rotation)).astype(np.float32)[:, None, None]
        k = scale.astype(np.float32)[:, None, None]
        du, dv = u - x.astype(np.float32)[:, None, None], v - y.astype(np.float32)[:, None, None]
        # object frame: rotate the offset back by the rotation, then divide by the scale
        self.X = (c * du + s * dv) / k
        self.Y = (-s * du + c * dv) / k
        self.px = k * half   # object-frame units -> pixels

    def paint(self, d, color, mask=None, pixels=None):
        """Composite a part of signed distance d (object-frame units, or pixels when pixels is
        given as the factor) with colour (B, 3) over the image; mask (B,) skips images."""
        a = d * (self.px if pixels is None else pixels)
        np.subtract(0.5, a, out=a)
        np.clip(a, 0.0, 1.0, out=a)
        if mask is not None:
            a *= mask[:, None, None]
        _composite(self.img, a, color)


def _composite(img, a, color):
    """img (B,3,H,W) <- img + a * (color - img), channel by channel (few temporaries)."""
    color = np.asarray(color, np.float32)
    for ch in range(3):
        t = np.subtract(color[:, ch, None, None], img[:, ch])
        t *= a
        img[:, ch] += t


def _col(b, rgb):
    return np.broadcast_to(np.asarray(rgb, np.float32), (b, 3))


def _p(rng, b, lo, hi):
    """A per-image parameter (B,1,1) uniform in [lo, hi]."""
    return rng.uniform(lo, hi, b).astype(np.float32)[:, None, None]


# ---------------------------------------------------------------- the objects
# each draws into the canvas; returns (B,) bool: whether the object itself shows a big circle
_DARK = (0.08, 0.07, 0.09)


def _face(cv, rng, main):
    b = len(main)
    X, Y = cv.X, cv.Y
    cv.paint(_circle(X, Y, 0, 0, _p(rng, b, 0.85, 0.95)), main)
    ex, ey, er = _p(rng, b, 0.28, 0.4), _p(rng, b, -0.35, -0.2), _p(rng, b, 0.1, 0.14)
    dark = _col(b, _DARK)
    cv.paint(np.minimum(_circle(X, Y, -ex, ey, er), _circle(X, Y, ex, ey, er)), dark)
    cv.paint(_arc(X, Y, 0, _p(rng, b, -0.05, 0.05), _p(rng, b, 0.45, 0.55), 0.12, 0.15), dark)
    return np.ones(b, bool)


def _house(cv, rng, main):
    b = len(main)
    X, Y = cv.X, cv.Y
    cv.paint(_box(X, Y, -0.7, -0.15, 0.7, 0.9), main)
    roof = np.clip(main * 0.5, 0, 1)
    top = _p(rng, b, -0.95, -0.8)
    cv.paint(_polygon(X, Y, [(-0.92, -0.12), (0.92, -0.12), (0, top)]), roof)
    cv.paint(_box(X, Y, -0.5, 0.35, -0.15, 0.9), _col(b, _DARK))
    round_window = rng.random(b) < 0.5
    light = _fixed(rng, b, 0.15, 0.3, 0.97)
    d = np.where(round_window[:, None, None], _circle(X, Y, 0.35, 0.3, 0.22),
                 _box(X, Y, 0.15, 0.1, 0.55, 0.5))
    cv.paint(d, light)
    return round_window


def _tree(cv, rng, main):
    b = len(main)
    X, Y = cv.X, cv.Y
    cv.paint(_box(X, Y, -0.13, 0.2, 0.13, 0.95), _fixed(rng, b, 0.07, 0.65, 0.42))
    round_top = rng.random(b) < 0.5
    r = _p(rng, b, 0.55, 0.7)
    pine = np.minimum(_polygon(X, Y, [(-0.75, 0.35), (0.75, 0.35), (0, -0.35)]),
                      _polygon(X, Y, [(-0.6, -0.05), (0.6, -0.05), (0, -0.95)]))
    cv.paint(np.where(round_top[:, None, None], _circle(X, Y, 0, -0.3, r), pine), main)
    return round_top


def _car(cv, rng, main):
    b = len(main)
    X, Y = cv.X, cv.Y
    cv.paint(_polygon(X, Y, [(-0.5, -0.02), (0.45, -0.02), (0.3, -0.45), (-0.35, -0.45)]), main)
    cv.paint(_box(X, Y, -0.95, -0.05, 0.95, 0.4), main)
    cv.paint(_polygon(X, Y, [(-0.38, -0.08), (0.33, -0.08), (0.22, -0.38), (-0.28, -0.38)]),
             _fixed(rng, b, 0.55, 0.25, 0.92))
    r = _p(rng, b, 0.2, 0.25)
    cv.paint(np.minimum(_circle(X, Y, -0.55, 0.42, r), _circle(X, Y, 0.55, 0.42, r)),
             _col(b, _DARK))
    return np.ones(b, bool)


def _fish(cv, rng, main):
    b = len(main)
    X, Y = cv.X, cv.Y
    tail = _p(rng, b, 0.35, 0.5)
    cv.paint(_polygon(X, Y, [(0.35, 0.0), (0.95, -tail), (0.95, tail)]), main)
    cv.paint(_ellipse(X, Y, -0.2, 0, _p(rng, b, 0.6, 0.7), _p(rng, b, 0.33, 0.42)), main)
    fin = np.clip(main * 0.6, 0, 1)
    cv.paint(_segment(X, Y, -0.1, -0.3, 0.1, 0.1, 0.1), fin)
    cv.paint(_circle(X, Y, -0.55, -0.08, 0.08), _col(b, _DARK))
    return np.zeros(b, bool)


def _flower(cv, rng, main):
    b = len(main)
    X, Y = cv.X, cv.Y
    cv.paint(_segment(X, Y, 0, 0.0, 0, 0.95, 0.12), _fixed(rng, b, 0.33, 0.7, 0.5))
    round_petals = rng.random(b) < 0.5
    k = 6
    cx, cy, rr = 0.0, -0.3, 0.42
    start = rng.uniform(0, 2 * np.pi, b).astype(np.float32)[:, None, None]
    d_round = d_long = None
    for j in range(k):
        ang = start + 2 * np.pi * j / k
        px, py = cx + rr * np.cos(ang), cy + rr * np.sin(ang)
        c = _circle(X, Y, px, py, 0.24)
        # a pointed petal: an elongated ellipse along the radius
        qx, qy = X - (cx + 0.7 * rr * np.cos(ang)), Y - (cy + 0.7 * rr * np.sin(ang))
        along = qx * np.cos(ang) + qy * np.sin(ang)
        across = -qx * np.sin(ang) + qy * np.cos(ang)
        e = (_hyp(along / 0.4, across / 0.13) - 1.0) * 0.13
        d_round = c if d_round is None else np.minimum(d_round, c)
        d_long = e if d_long is None else np.minimum(d_long, e)
    cv.paint(np.where(round_petals[:, None, None], d_round, d_long), main)
    cv.paint(_circle(X, Y, cx, cy, 0.12), _fixed(rng, b, 0.12, 0.9, 0.95))
    return round_petals


_DRAW = (_face, _house, _tree, _car, _fish, _flower)


# ---------------------------------------------------------------- backgrounds
def _backgrounds(rng, kinds, size, bg_colors=None):
    """(B, 3, size, size) textures for background indices kinds (B,). bg_colors (B,): a
    palette index per image to tint the background with that named colour, -1 (or None for
    all) for a random, greyish hue."""
    b = len(kinds)
    half = size / 2.0
    u = ((np.arange(size, dtype=np.float32) + 0.5) / half - 1.0)[None, None, :]
    v = ((np.arange(size, dtype=np.float32) + 0.5) / half - 1.0)[None, :, None]
    hue = rng.random(b)
    sat1, val1 = rng.uniform(0.0, 0.3, b), rng.uniform(0.25, 0.9, b)
    dhue, sat2, val2 = rng.uniform(-0.15, 0.15, b), rng.uniform(0.0, 0.35, b), rng.uniform(
        0.25, 0.9, b)
    named = np.flatnonzero(np.asarray(bg_colors) >= 0) if bg_colors is not None else []
    if len(named):
        # a named background colour: the palette hue, clearly tinted (saturation 0.3-0.45) but
        # duller than any object (>= 0.35 for pink, which is light; >= 0.6 for the rest) and
        # darker than pink objects, so the object's colour still stands out. The same random
        # draws are reused (rescaled), so images without a named colour do not change.
        pal = np.array([_PALETTE[COLORS[c]][0] for c in np.asarray(bg_colors)[named]])
        hue[named] = pal + (hue[named] - 0.5) * 0.03
        dhue[named] *= 0.1
        sat1[named] = 0.3 + sat1[named] * 0.5
        sat2[named] = 0.3 + sat2[named] * 0.43
        val1[named] = 0.3 + (val1[named] - 0.25) * 0.65
        val2[named] = 0.3 + (val2[named] - 0.25) * 0.65
    c1 = _hsv_to_rgb(hue, sat1, val1)
    c2 = _hsv_to_rgb(hue + dhue, sat2, val2)
    # make the second colour differ from the first in brightness by at least 0.25
    lum = lambda c: c @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    close = np.abs(lum(c1) - lum(c2)) < 0.25
    c2[close] = np.clip(np.where(lum(c1[close])[:, None] > 0.5, c1[close] - 0.35,
                                 c1[close] + 0.35), 0, 1)
    if len(named):   # a named colour darkens by scaling, lightens towards white: stays dull
        fix = np.zeros(b, bool)
        fix[named] = True
        fix &= close
        c2[fix] = np.where(lum(c1[fix])[:, None] > 0.5, c1[fix] * 0.55,
                           c1[fix] + (1 - c1[fix]) * 0.45)
    theta = rng.uniform(0, np.pi, b).astype(np.float32)[:, None, None]
    cth, sth = np.cos(theta), np.sin(theta)
    period = rng.uniform(5.0, 9.0, b).astype(np.float32)[:, None, None] / half
    phase = rng.uniform(0, 2 * np.pi, b).astype(np.float32)[:, None, None]
    spacing = rng.uniform(5.0, 8.0, b).astype(np.float32)[:, None, None] / half
    radius = rng.uniform(1.1, 1.8, b).astype(np.float32)[:, None, None]
    off = rng.random((2, b)).astype(np.float32)[:, :, None, None]
    t = np.zeros((b, size, size), np.float32)            # mixing weight of c2, per pixel
    i = np.flatnonzero(kinds == 1)                       # stripes: a square wave, 1-px edges
    if i.size:
        w = np.sin(2 * np.pi * (u * cth[i] + v * sth[i]) / period[i] + phase[i])
        t[i] = np.clip(0.5 + w * (period[i] * half / 4.0), 0, 1)
    i = np.flatnonzero(kinds == 2)                       # dots on a rotated square lattice
    if i.size:
        a = (u * cth[i] + v * sth[i]) / spacing[i] + off[0, i]
        c = (-u * sth[i] + v * cth[i]) / spacing[i] + off[1, i]
        a -= np.round(a)
        c -= np.round(c)
        dist = _hyp(a, c) * (spacing[i] * half)
        t[i] = np.clip(radius[i] + 0.5 - dist, 0, 1)
    g = np.flatnonzero(kinds == 3)                       # a linear gradient, plus noise
    if g.size:
        t[g] = np.clip(0.5 + 0.5 * (u * cth[g] + v * sth[g]), 0, 1)
    img = c1[:, :, None, None] + t[:, None] * (c2 - c1)[:, :, None, None]
    if g.size:
        img[g] += rng.standard_normal((g.size, 1, size, size), np.float32) * 0.06
    return img.astype(np.float32)


# ---------------------------------------------------------------- distractors
def _distractors(cv_img, rng, kinds, size):
    """Small shapes (radius 2.5-3.5 px) near a corner, in front of the object."""
    b = len(kinds)
    if not (kinds > 0).any():
        return
    half = size / 2.0
    u = ((np.arange(size, dtype=np.float32) + 0.5) - half)[None, None, :]
    v = ((np.arange(size, dtype=np.float32) + 0.5) - half)[None, :, None]
    sx = np.where(rng.random(b) < 0.5, -1.0, 1.0)
    sy = np.where(rng.random(b) < 0.5, -1.0, 1.0)
    cx = (sx * rng.uniform(10.0, 12.0, b)).astype(np.float32)[:, None, None]
    cy = (sy * rng.uniform(10.0, 12.0, b)).astype(np.float32)[:, None, None]
    r = rng.uniform(2.5, 3.5, b).astype(np.float32)[:, None, None]
    ang = rng.uniform(0, np.pi / 2, b).astype(np.float32)[:, None, None]
    d = np.full((b, size, size), np.inf, np.float32)
    for kind in (1, 2, 3):
        i = np.flatnonzero(kinds == kind)
        if not i.size:
            continue
        X, Y, ri = u - cx[i], v - cy[i], r[i]
        c, s = np.cos(ang[i]), np.sin(ang[i])
        Xr, Yr = c * X + s * Y, -s * X + c * Y
        if kind == 1:
            d[i] = _hyp(X, Y) - ri
        elif kind == 2:
            d[i] = _box(Xr, Yr, -0.85 * ri, -0.85 * ri, 0.85 * ri, 0.85 * ri)
        else:
            d[i] = _polygon(Xr, Yr, [(0 * ri, -1.2 * ri), (1.1 * ri, 0.7 * ri),
                                     (-1.1 * ri, 0.7 * ri)])
    # white or black, whichever stands out from the pixels around it
    lum = cv_img.mean(axis=(1, 2, 3))
    color = np.where(lum[:, None] > 0.5, 0.05, 0.97).astype(np.float32) * np.ones((1, 3),
                                                                                  np.float32)
    _composite(cv_img, np.clip(0.5 - d, 0, 1), color)


# ---------------------------------------------------------------- edge orientation
def edge_orientation(images, patch=16):
    """Dominant edge orientation bin (0 horizontal, 1 "/", 2 vertical, 3 "\\") of the central
    patch x patch pixels of each image (n, 3, H, W), from the structure tensor of the luminance.
    The edge runs perpendicular to the brightness gradient; angles are as seen on screen."""
    images = np.asarray(images, np.float32)
    lum = images[:, 0] * 0.299 + images[:, 1] * 0.587 + images[:, 2] * 0.114
    h, w = lum.shape[1:]
    y0, x0 = (h - patch) // 2, (w - patch) // 2
    p = lum[:, max(y0 - 1, 0):y0 + patch + 1, max(x0 - 1, 0):x0 + patch + 1]
    gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) * 0.5
    gy = -(p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) * 0.5      # y up, as seen on screen
    jxx, jyy, jxy = (gx * gx).sum((1, 2)), (gy * gy).sum((1, 2)), (gx * gy).sum((1, 2))
    grad_angle = 0.5 * np.arctan2(2 * jxy, jxx - jyy)   # dominant gradient direction
    edge = np.degrees(grad_angle + np.pi / 2) % 180.0   # the edge is perpendicular to it
    return (np.round(edge / 45.0).astype(np.int64) % 4)


# ---------------------------------------------------------------- the generator
def _per_image(spec, n, parse, what):
    """None -> None; one name/index -> all images; a sequence of n -> per image."""
    if spec is None:
        return None
    if isinstance(spec, (str, int, np.integer)):
        return np.full(n, parse(spec), np.int64)
    spec = list(spec)
    if len(spec) != n:
        raise ValueError(f"make_shapes: {what} must be one value or {n} values (one per "
                         f"image), got {len(spec)}")
    return np.array([parse(s) for s in spec], np.int64)


def make_shapes(n, seed=0, classes=None, colors=None, backgrounds=None, distractors=True,
                size=SIZE, chunk=256, workers=None, bg_colors=None):
    """n images as (images (n, 3, size, size) float32 in [0, 1], labels (n,) int64, attributes).

    Deterministic from seed (and the other arguments). classes, colors, backgrounds: None
    (random: classes balanced, each exactly n // 6 or one more, in random order), one name or
    index for every image, or a sequence of n, one per image; names in English or Spanish
    ("red"/"rojo", "stripes"/"rayas", "house"/"casa"). distractors: False for none, else a small
    circle, square or triangle in 40% of the images. workers: threads drawing (default:
    fastnn.get_num_threads()); the images do not depend on it. bg_colors: None (every
    background a random, greyish hue), or like colors, a named colour per image to tint its
    background with ("azul"), where -1 keeps the random hue; images whose background is not
    named are the same as with None. The attributes are described in the module's docstring."""
    n = int(n)
    if n < 0:
        raise ValueError(f"make_shapes: n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    labels = _per_image(classes, n, parse_class, "classes")
    if labels is None:
        labels = rng.permutation(np.arange(n) % k).astype(np.int64)
    color = _per_image(colors, n, parse_color, "colors")
    if color is None:
        color = rng.integers(0, len(COLORS), n)
    bg = _per_image(backgrounds, n, parse_background, "backgrounds")
    if bg is None:
        bg = rng.integers(0, len(BACKGROUNDS), n)
    bg_color = np.full(n, -1, np.int64)
    if bg_colors is not None:
        if isinstance(bg_colors, (str, int, np.integer)):
            bg_colors = [bg_colors] * n
        bg_colors = list(bg_colors)
        if len(bg_colors) != n:
            raise ValueError(f"make_shapes: bg_colors must be one value or {n} values (one per "
                             f"image), got {len(bg_colors)}")
        bg_color = np.array([-1 if (isinstance(c, (int, np.integer)) and c == -1)
                             else parse_color(c) for c in bg_colors], np.int64)
    distractor = (np.where(rng.random(n) < 0.4, rng.integers(1, 4, n), 0) if distractors
                  else np.zeros(n, np.int64)).astype(np.int64)
    scale = rng.uniform(0.55, 0.85, n)
    rotation = rng.uniform(-30, 30, n)
    room = np.maximum(0.95 - scale, 0.0)
    x = rng.uniform(-1, 1, n) * room
    y = rng.uniform(-1, 1, n) * room

    images = np.empty((n, 3, size, size), np.float32)
    object_circle = np.zeros(n, bool)
    # one vectorized pass per class, in chunks; each chunk draws its details from a generator
    # of its own (children of `seed`), so threads change the speed, never the images
    jobs = [(c, rows[i:i + chunk]) for c in range(k)
            for rows in [np.flatnonzero(labels == c)] for i in range(0, len(rows), chunk)]
    seeds = np.random.SeedSequence(rng.integers(0, 2 ** 63, 4).tolist()).spawn(len(jobs))

    def draw(job, ss):
        c, idx = job
        r = np.random.default_rng(ss)
        img = _backgrounds(r, bg[idx], size, bg_color[idx] if bg_colors is not None else None)
        cv = _Canvas(img, scale[idx], rotation[idx], x[idx], y[idx])
        object_circle[idx] = _DRAW[c](cv, r, _named_colors(r, color[idx]))
        _distractors(cv.img, r, distractor[idx], size)
        images[idx] = cv.img

    workers = max(1, min(int(workers or get_num_threads()), len(jobs)))
    if workers == 1:
        for job, ss in zip(jobs, seeds):
            draw(job, ss)
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(workers) as pool:   # numpy releases the GIL in its loops
            list(pool.map(draw, jobs, seeds))
    np.clip(images, 0.0, 1.0, out=images)
    attributes = {
        "contains_circle": object_circle | (distractor == 1),
        "edge_orientation": edge_orientation(images),
        "background": bg.astype(np.int64),
        "color": color.astype(np.int64),
        "bg_color": bg_color,
        "distractor": distractor,
        "scale": scale.astype(np.float32),
        "rotation": rotation.astype(np.float32),
        "x": x.astype(np.float32),
        "y": y.astype(np.float32),
    }
    return images, labels, attributes


_SPLITS = {"train": 0, "test": 1, "val": 2}


class ShapesDataset(Dataset):
    """The shapes images as a Dataset: ds[i] -> (image Tensor (3, 32, 32) float32 in [0, 1],
    label int), as torchvision's image datasets. split ("train", "test" or "val") picks an
    independent stream of images for the same seed. transform / target_transform: applied to
    the image Tensor / the label. The whole arrays: .images, .labels (numpy), .attributes
    (a dict, see make_shapes); .classes the class names."""

    classes = CLASSES

    def __init__(self, n, seed=0, split="train", transform=None, target_transform=None,
                 **options):
        if split not in _SPLITS:
            raise ValueError(f"ShapesDataset: split must be one of {', '.join(_SPLITS)}, "
                             f"got {split!r}")
        self.split = split
        self.seed = seed
        stream = np.random.SeedSequence([int(seed), _SPLITS[split], 0x5A9E5])
        self.images, self.labels, self.attributes = make_shapes(n, stream, **options)
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        img = Tensor(self.images[index])
        label = int(self.labels[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return img, label

    def __repr__(self):
        return (f"ShapesDataset(n={len(self)}, seed={self.seed}, split={self.split!r}, "
                f"classes={list(self.classes)})")
