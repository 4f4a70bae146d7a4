"""A prompt-conditioned diffusion model (DDPM) that learns to draw 8x8 digits by denoising.

The lesson: a forward process adds Gaussian noise step by step until an image is pure noise;
a network learns to predict that noise (epsilon-prediction), and running the process backwards
from fresh noise synthesizes new images. Conditioning on a prompt ("7", "seven", "siete") and
classifier-free guidance steer what gets drawn.

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),  abar_t = prod_{s<=t} (1 - beta_s)
    loss = || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, y) ||^2
    guided eps = (1 + w) eps_theta(x, t, y) - w eps_theta(x, t, null)      (w = guidance scale)

The denoiser is a residual MLP over the 64 pixels with a sinusoidal time embedding and a learned
prompt embedding (one extra row is the null prompt, used when the condition is dropped).
"""
import math
import unicodedata
from dataclasses import asdict, dataclass

import numpy as np

from .. import nn
from ..data import load_digits
from ..data.shapes import (BACKGROUNDS, CLASSES, COLORS, make_shapes, parse_background,
                           parse_class, parse_color)
from ..nn import functional as F
from ..serialization import CheckpointError
from ..tensor import Tensor, no_grad
from .text_encoder import PromptTokenizer, TextEncoder
from .unet import UNet, timestep_embedding

__all__ = ["parse_prompt", "PROMPTS", "NoiseSchedule", "Schedule", "linear_betas", "cosine_betas",
           "timestep_embedding", "DiffusionConfig", "ResBlock", "Denoiser", "Diffusion", "EMA",
           "digits_split", "to_model_space", "to_pixel_space", "ShapesConfig", "ShapesDenoiser",
           "ShapesDiffusion", "shapes_to_model_space", "shapes_to_pixel_space", "HOLDOUT"]

# ---------------------------------------------------------------- prompts
_WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
}
PROMPTS = {str(d): d for d in range(10)}
for _lang in _WORDS.values():
    PROMPTS.update({w: d for d, w in enumerate(_lang)})


def parse_prompt(prompt):
    """A digit 0-9 from "7", "seven" or "siete" (case, spaces and accents ignored)."""
    key = unicodedata.normalize("NFKD", str(prompt)).encode("ascii", "ignore").decode()
    key = key.strip().lower()
    if key in PROMPTS:
        return PROMPTS[key]
    understood = ", ".join(f"{d} ({_WORDS['en'][d]}/{_WORDS['es'][d]})" for d in range(10))
    raise ValueError(f"unknown prompt {prompt!r}; understood prompts are the digits {understood}")


# ---------------------------------------------------------------- noise schedules
def linear_betas(steps):
    """DDPM's linear schedule, scaled by 1000/steps so abar_T is near zero for any step count."""
    scale = 1000.0 / steps
    return np.linspace(1e-4 * scale, min(0.02 * scale, 0.999), steps)


def cosine_betas(steps, s=0.008):
    """Nichol & Dhariwal's cosine schedule: abar_t = cos^2(((t/T + s)/(1 + s)) pi/2)."""
    t = np.arange(steps + 1) / steps
    abar = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)


class NoiseSchedule:
    """The forward (noising) process: betas, alphas and cumulative products abar for
    t = 0..T-1 (index t is step t+1). Not a learning-rate schedule (fastnn.optim.lr_scheduler)."""

    def __init__(self, steps=1000, kind="linear"):
        if kind not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {kind!r}; choose 'linear' or 'cosine'")
        self.steps, self.kind = int(steps), kind
        self.betas = linear_betas(steps) if kind == "linear" else cosine_betas(steps)
        self.alphas = 1 - self.betas
        self.abar = np.cumprod(self.alphas)

    def q_sample(self, x0, t, noise):
        """Noise x0 to step t in closed form (x0: (N, ...), t: int array (N,), noise like x0)."""
        ab = self.abar[t].reshape((-1,) + (1,) * (np.ndim(x0) - 1))
        return (np.sqrt(ab) * x0 + np.sqrt(1 - ab) * noise).astype(x0.dtype)


Schedule = NoiseSchedule  # its name before NoiseSchedule


# ---------------------------------------------------------------- the denoiser
@dataclass
class DiffusionConfig:
    image_size: int = 8
    hidden: int = 192
    n_blocks: int = 3
    time_dim: int = 64
    n_classes: int = 10
    steps: int = 1000          # diffusion steps T
    schedule: str = "linear"
    p_uncond: float = 0.1      # probability of dropping the prompt during training


class ResBlock(nn.Module):
    """h + W2 gelu(W1 (LN(h) + cond)): a pre-norm residual MLP block with an additive condition."""

    def __init__(self, hidden):
        super().__init__()
        self.ln = nn.LayerNorm(hidden)
        self.cond = nn.Linear(hidden, hidden)
        self.fc1 = nn.Linear(hidden, 2 * hidden)
        self.fc2 = nn.Linear(2 * hidden, hidden)

    def forward(self, h, c):
        z = self.ln(h) + self.cond(c)
        return h + self.fc2(F.gelu(self.fc1(z), approximate="tanh"))


class Denoiser(nn.Module):
    """eps_theta(x_t, t, y): predicts the noise in x_t (N, 64) at steps t for prompts y
    (y == n_classes is the null prompt)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        d, h = config.image_size ** 2, config.hidden
        self.time_mlp = nn.Sequential(nn.Linear(config.time_dim, h), nn.GELU("tanh"),
                                      nn.Linear(h, h))
        self.label_emb = nn.Embedding(config.n_classes + 1, h)
        self.inp = nn.Linear(d, h)
        self.blocks = nn.ModuleList([ResBlock(h) for _ in range(config.n_blocks)])
        self.ln_out = nn.LayerNorm(h)
        self.out = nn.Linear(h, d)
        with no_grad():
            self.label_emb.weight._data *= 0.1
            self.out.weight._data[...] = 0   # start by predicting zero noise: a calm first step
            self.out.bias._data[...] = 0

    def forward(self, x, t, y):
        temb = Tensor(timestep_embedding(t, self.config.time_dim).astype(x.dtype),
                      device=x.device)
        c = self.time_mlp(temb) + self.label_emb(y)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(F.gelu(self.ln_out(h), approximate="tanh"))


# ---------------------------------------------------------------- data
def digits_split(seed=0):
    """scikit-learn's bundled 8x8 digits as (train_x, train_y, test_x, test_y), pixels 0..16."""
    xtr, ytr, xte, yte = load_digits(seed=seed)   # X in [0, 1]
    return (xtr.reshape(-1, 8, 8) * 16, ytr, xte.reshape(-1, 8, 8) * 16, yte)


def to_model_space(images):
    """Digits pixels 0..16 -> [-1, 1], flattened to (N, 64) float32."""
    x = np.asarray(images, np.float32).reshape(len(images), -1)
    return x / 8.0 - 1.0


def to_pixel_space(x, image_size=8):
    """Model space [-1, 1] -> pixels 0..16, shape (N, 8, 8), float32."""
    x = np.clip(np.asarray(x, np.float32), -1, 1)
    return ((x + 1.0) * 8.0).reshape(len(x), image_size, image_size)


# ---------------------------------------------------------------- sampling
class Diffusion:
    """A denoiser together with its schedule: training loss and the samplers."""

    def __init__(self, config=None, model=None):
        self.config = config or DiffusionConfig()
        self.model = model or Denoiser(self.config)
        self.schedule = NoiseSchedule(self.config.steps, self.config.schedule)

    # -- training
    def loss(self, x0, y, rng):
        """One epsilon-prediction MSE on a batch: random steps, random noise, dropped prompts."""
        n = len(x0)
        t = rng.integers(0, self.schedule.steps, n)
        noise = rng.standard_normal(x0.shape).astype(x0.dtype)
        y = np.where(rng.random(n) < self.config.p_uncond, self.config.n_classes, y)
        xt = self.schedule.q_sample(x0, t, noise)
        device = self.device()                 # the batch goes where the model is
        pred = self.model(Tensor(xt, device=device), t, Tensor(y.astype(np.int64), device=device))
        return F.mse_loss(pred, Tensor(noise, device=device))

    def device(self):
        """Where the model's parameters live ('cpu' or 'cuda:N'): model.to(device) moves them."""
        return next(iter(self.model.parameters())).device

    # -- what differs between the digits and the shapes model
    def _shape(self, n):
        """The shape of n images in model space."""
        return (n, self.config.image_size ** 2)

    def _null(self, n):
        """The null condition (classifier-free guidance's unconditional input) for n images."""
        return np.full(n, self.config.n_classes, dtype=np.int64)

    def _cond(self, cond):
        return np.asarray(cond, dtype=np.int64)

    # -- guided noise prediction
    def _eps(self, x, t, y, guidance):
        n = len(x)
        steps = np.full(n, t, dtype=np.int64)
        if guidance == 0:
            return self.model(Tensor(x), steps, Tensor(y))._data
        # conditional and unconditional in one batch: one pass through the network
        both = self.model(Tensor(np.concatenate([x, x])), np.concatenate([steps, steps]),
                          Tensor(np.concatenate([y, self._null(n)])))._data
        cond, uncond = both[:n], both[n:]
        return (1 + guidance) * cond - guidance * uncond

    def _x0(self, x, eps, t):
        ab = self.schedule.abar[t]
        x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        return np.clip(x0, -1, 1)

    @no_grad()
    def sample(self, labels, guidance=1.0, sampler="ddim", steps=None, seed=0, trajectory=False,
               dtype=np.float32, init=None, strength=1.0):
        """Draw one image per condition (digits: int labels; shapes: token ids (N, L)).
        sampler 'ddpm' (ancestral, every step) or 'ddim' (deterministic, `steps` evenly spaced
        steps; default 25). Returns images in model space ([-1, 1]; digits (N, 64), shapes
        (N, 3, 32, 32)), and when trajectory=True also the list of intermediate x_t.

        img2img (SDEdit): init, images in model space (one per condition), is noised to step
        strength * T in closed form and denoised from there under the prompt: strength 0
        returns init, 1 ignores it; in between keeps its layout and colours and redraws the
        detail, more of it the higher the strength."""
        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"unknown sampler {sampler!r}; choose 'ddpm' or 'ddim'")
        if not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        labels = self._cond(labels)
        rng = np.random.default_rng(seed)
        T = self.schedule.steps
        x = rng.standard_normal(self._shape(len(labels))).astype(dtype)
        t_start = T - 1
        if init is not None:
            init = np.asarray(init, dtype)
            if init.shape != x.shape:
                raise ValueError(f"init must hold one image per prompt, shape {x.shape} in model "
                                 f"space; got {init.shape}")
            if strength == 0:
                return (init.copy(), [init.copy()]) if trajectory else init.copy()
            t_start = int(round(float(strength) * (T - 1)))
            x = self.schedule.q_sample(init, np.full(len(x), t_start), x)
        path = [x.copy()]
        was_training = self.model.training
        self.model.eval()
        try:
            if sampler == "ddpm":
                sched = self.schedule
                for t in range(t_start, -1, -1):
                    eps = self._eps(x, t, labels, guidance)
                    x0 = self._x0(x, eps, t)
                    ab, ab_prev = sched.abar[t], (sched.abar[t - 1] if t > 0 else 1.0)
                    # posterior q(x_{t-1} | x_t, x0): mean and variance in closed form
                    c0 = math.sqrt(ab_prev) * sched.betas[t] / (1 - ab)
                    ct = math.sqrt(sched.alphas[t]) * (1 - ab_prev) / (1 - ab)
                    x = c0 * x0 + ct * x
                    if t > 0:
                        var = sched.betas[t] * (1 - ab_prev) / (1 - ab)
                        x = x + math.sqrt(var) * rng.standard_normal(x.shape)
                    x = x.astype(dtype)
                    if trajectory:
                        path.append(x.copy())
            else:
                k = int(steps or 25)
                if not 1 <= k <= T:
                    raise ValueError(f"DDIM steps must be in [1, {T}], got {k}")
                # img2img runs the same spacing over the part of the schedule it starts from
                k = max(1, int(round(k * (t_start + 1) / T)))
                ts = np.unique(np.linspace(0, t_start, k).round().astype(int))[::-1]
                for i, t in enumerate(ts):
                    eps = self._eps(x, t, labels, guidance)
                    x0 = self._x0(x, eps, t)
                    if i + 1 == len(ts):
                        x = x0
                    else:
                        ab, ab_prev = self.schedule.abar[t], self.schedule.abar[ts[i + 1]]
                        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)  # consistent with clip
                        x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
                    x = x.astype(dtype)
                    if trajectory:
                        path.append(x.copy())
        finally:
            self.model.train(was_training)
        return (x, path) if trajectory else x

    # -- checkpoints
    def state(self, ema=None):
        """Everything a checkpoint needs: config.* entries and model.* weights (EMA if given)."""
        out = {f"config.{k}": np.array(v) for k, v in asdict(self.config).items()}
        weights = ema if ema is not None else self.model.state_dict()
        out.update({f"model.{k}": v for k, v in weights.items()})
        out["kind"] = np.array("fastnn-diffusion")
        return out

    @classmethod
    def from_state(cls, state, path="checkpoint"):
        """The Diffusion back from state() (e.g. read by fastnn.load); CheckpointError (a
        ValueError) if it is not one."""
        if str(state.get("kind", "")) != "fastnn-diffusion":
            raise CheckpointError(f"{path} is not a fastnn diffusion checkpoint "
                             f"(no kind=fastnn-diffusion entry)")
        if cls is Diffusion and str(state.get("config.data", "digits")) == "shapes":
            return ShapesDiffusion.from_state(state, path)
        fields = DiffusionConfig.__dataclass_fields__
        kwargs = {}
        for k, f in fields.items():
            if f"config.{k}" not in state:
                raise CheckpointError(f"{path}: missing config.{k}")
            v = state[f"config.{k}"]
            kwargs[k] = type(f.default)(v.item() if v.ndim == 0 else v)
        diff = cls(DiffusionConfig(**kwargs))
        weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        try:
            diff.model.load_state_dict(weights)
        except (KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: weights do not match the model in its config: "
                                  f"{e}") from e
        return diff


class EMA:
    """Exponential moving average of a model's parameters, kept as numpy copies."""

    def __init__(self, model, decay):
        self.decay = decay
        self.params = [(name, p) for name, p in model.named_parameters()]
        self.shadow = {name: p._data.copy() for name, p in self.params}

    def update(self):
        d = self.decay
        for name, p in self.params:
            s = self.shadow[name]
            s *= d
            s += (1 - d) * p._data

    def state_dict(self, model):
        sd = model.state_dict()
        sd.update({k: v.copy() for k, v in self.shadow.items()})
        return sd


# ---------------------------------------------------------------- the shapes model
# combinations never shown in training (class:colour), one per class, each colour at most once:
# generating them is composition, a new image that meets both conditions
HOLDOUT = "fish:red,house:blue,tree:purple,car:yellow,flower:cyan,face:green"


@dataclass
class ShapesConfig:
    """The prompt-conditioned U-Net diffusion on the 32x32 RGB shapes."""
    data: str = "shapes"
    image_size: int = 32
    channels: str = "16,48,96"      # U-Net widths per resolution (comma-separated)
    blocks: str = "0,1"             # residual blocks per level above the bottom
    cond_dim: int = 128
    text_dim: int = 64
    time_dim: int = 64
    steps: int = 1000               # diffusion steps T
    schedule: str = "linear"
    p_uncond: float = 0.1           # probability of the null prompt during training
    holdout: str = HOLDOUT
    attn: str = ""                  # U-Net levels with attention over pixels and prompt tokens
    prediction: str = "eps"         # what the network predicts: "eps" (noise) or "v"
    min_snr: float = 0.0            # min-SNR-gamma loss weighting (0: plain MSE)
    bg_colors: float = 0.0          # share of training images with a named background colour
    backgrounds: str = ""           # training backgrounds, comma-separated names ("": all four)
    t_bias: float = 0.0             # > 0 draws training steps more often at high noise
    snr_floor: float = 0.0          # with min_snr: the x0 error's weight is at least this

    def ints(self, field):
        return tuple(int(v) for v in str(getattr(self, field)).split(",") if v.strip())

    def background_ids(self):
        """The training backgrounds' indices in BACKGROUNDS (all four when none are named)."""
        names = [b.strip() for b in str(self.backgrounds).split(",") if b.strip()]
        return sorted({parse_background(b) for b in names}) or list(range(len(BACKGROUNDS)))

    def holdout_pairs(self):
        """The held-out (class index, colour index) pairs."""
        pairs = []
        for item in filter(None, (p.strip() for p in str(self.holdout).split(","))):
            obj, _, col = item.partition(":")
            pairs.append((parse_class(obj), parse_color(col)))
        return pairs


# config fields added after the first shapes checkpoints, and the value those checkpoints meant
_SHAPES_LEGACY = {"attn": "", "prediction": "eps", "min_snr": 0.0, "bg_colors": 0.0,
                  "backgrounds": "", "t_bias": 0.0,
                  "snr_floor": 0.0}


class ShapesDenoiser(nn.Module):
    """The network of the shapes model (x_t, t, prompt ids) -> eps or v: the text encoder's
    vector conditions a U-Net by FiLM, and its token states by attention at config.attn."""

    def __init__(self, config, vocab_size):
        super().__init__()
        self.config = config
        if config.prediction not in ("eps", "v"):
            raise ValueError(f"unknown prediction {config.prediction!r}; choose 'eps' or 'v'")
        if config.t_bias < 0:
            raise ValueError(f"t_bias must be >= 0 (0: uniform steps), got {config.t_bias}")
        if config.snr_floor < 0:
            raise ValueError(f"snr_floor must be >= 0 (0: off), got {config.snr_floor}")
        if config.min_snr < 0:
            raise ValueError(f"min_snr must be >= 0 (0: off), got {config.min_snr}")
        self.text = TextEncoder(vocab_size, dim=config.text_dim, out_dim=config.cond_dim)
        self.unet = UNet(3, config.ints("channels"), config.ints("blocks"), config.cond_dim,
                         config.time_dim, attn=config.ints("attn"), ctx_dim=config.text_dim)

    def forward(self, x, t, ids):
        pooled, tokens, keep = self.text.encode(ids)
        return self.unet(x, t, pooled, tokens, keep)


def shapes_to_model_space(images):
    """Shapes images (N, 3, 32, 32) in [0, 1] -> [-1, 1] float32."""
    return np.asarray(images, np.float32) * 2.0 - 1.0


def shapes_to_pixel_space(x):
    """Model space -> images (N, 3, H, W) in [0, 1] float32."""
    return (np.clip(np.asarray(x, np.float32), -1, 1) + 1.0) * 0.5


def shapes_training_data(n, seed, config):
    """n training images (model space) with their class, colour, background and background
    colour (-1: a random grey hue) attributes, classes and colours balanced, the config's
    held-out pairs left out, no distractors (the prompts cannot describe them). A share
    config.bg_colors of the backgrounds is tinted a named colour, never the object's own; the
    backgrounds are drawn from config.backgrounds (all four when empty)."""
    rng = np.random.default_rng(seed)
    held = set(config.holdout_pairs())
    allowed = [(c, k) for c in range(len(CLASSES)) for k in range(len(COLORS))
               if (c, k) not in held]
    pick = rng.integers(0, len(allowed), n)
    obj = np.array([allowed[i][0] for i in pick], np.int64)
    col = np.array([allowed[i][1] for i in pick], np.int64)
    bg_col = None
    if config.bg_colors > 0:
        other = (col + rng.integers(1, len(COLORS), n)) % len(COLORS)   # never the object's
        bg_col = np.where(rng.random(n) < config.bg_colors, other, -1)
    kinds = config.background_ids()
    # all four: make_shapes draws them itself (the images of earlier checkpoints stay the same)
    backs = (None if len(kinds) == len(BACKGROUNDS)
             else np.array(kinds)[rng.integers(0, len(kinds), n)])
    images, labels, attrs = make_shapes(n, seed=np.random.SeedSequence([seed, 0xD1FF]),
                                        classes=obj, colors=col, distractors=False,
                                        bg_colors=bg_col, backgrounds=backs)
    return (shapes_to_model_space(images), labels, attrs["color"], attrs["background"],
            attrs["bg_color"])


class ShapesDiffusion(Diffusion):
    """The shapes model: conditions are prompts ("un pez rojo") encoded to token ids."""

    def __init__(self, config=None, model=None):
        self.config = config or ShapesConfig()
        self.tokenizer = PromptTokenizer()
        self.model = model or ShapesDenoiser(self.config, self.tokenizer.vocab_size)
        self.schedule = NoiseSchedule(self.config.steps, self.config.schedule)

    def _shape(self, n):
        s = self.config.image_size
        return (n, 3, s, s)

    def _null(self, n):
        return self.tokenizer.null(n)

    def _eps(self, x, t, y, guidance):
        # the network runs in its weights' dtype; the sampler keeps the one it was asked for
        wdtype = self.model.unet.out.weight._data.dtype
        out = super()._eps(x.astype(wdtype, copy=False), t, y, guidance).astype(x.dtype)
        if self.config.prediction == "v":
            # v = sqrt(abar) eps - sqrt(1 - abar) x0 and x = sqrt(abar) x0 + sqrt(1 - abar) eps
            # give eps = sqrt(1 - abar) x + sqrt(abar) v (guidance, linear, commutes with this)
            ab = self.schedule.abar[t]
            out = (math.sqrt(1 - ab) * x + math.sqrt(ab) * out).astype(x.dtype)
        return out

    def _cond(self, cond):
        """Prompts (a str or a list of str) or token ids (N, L) -> ids."""
        if isinstance(cond, str) or (isinstance(cond, (list, tuple)) and cond
                                     and isinstance(cond[0], str)):
            return self.tokenizer.encode(cond)
        ids = np.asarray(cond, dtype=np.int64)
        if ids.ndim != 2:
            raise ValueError(f"expected prompts or token ids (N, L), got shape {ids.shape}")
        return ids

    def loss(self, x0, ids, rng):
        """MSE on the noise (prediction "eps") or on v = sqrt(abar) eps - sqrt(1 - abar) x0:
        random steps and noise; the null prompt with p_uncond. With min_snr = gamma each sample
        is weighted min(SNR, gamma) / SNR (eps) or min(SNR, gamma) / (SNR + 1) (v), SNR =
        abar / (1 - abar): both are that weight on the x0 error, so the nearly clean steps,
        which teach only fine detail, stop dominating the gradient (Hang et al. 2023).
        snr_floor = f raises that x0 weight to at least f, clip(SNR, f, gamma): min-SNR alone
        weighs the x0 error of the noisiest steps by SNR, nearly zero, and those are where the
        layout, and so which object it is, gets decided (Salimans & Ho's "truncated SNR" is
        f = 1 without the cap)."""
        n, T = len(x0), self.schedule.steps
        if self.config.t_bias:
            # density (1 + b) u^b over u = t / T: the noisy steps, where the layout and so the
            # object's identity are decided, come up more often
            t = np.minimum((rng.random(n) ** (1 / (1 + self.config.t_bias)) * T).astype(int),
                           T - 1)
        else:
            t = rng.integers(0, T, n)
        noise = rng.standard_normal(x0.shape).astype(x0.dtype)
        ids = np.where((rng.random(n) < self.config.p_uncond)[:, None], self._null(n), ids)
        xt = self.schedule.q_sample(x0, t, noise)
        pred = self.model(Tensor(xt), t, ids)
        ab = self.schedule.abar[t].reshape(-1, 1, 1, 1)
        v = self.config.prediction == "v"
        target = (np.sqrt(ab) * noise - np.sqrt(1 - ab) * x0) if v else noise
        target = target.astype(x0.dtype)
        if not self.config.min_snr:
            return F.mse_loss(pred, Tensor(target))
        snr = ab / (1 - ab)
        w_x0 = np.clip(snr, min(self.config.snr_floor, self.config.min_snr), self.config.min_snr)
        w = w_x0 / (snr + 1 if v else snr)
        sw = Tensor(np.sqrt(w).astype(x0.dtype))
        return F.mse_loss(pred * sw, Tensor(target * sw._data))

    def state(self, ema=None):
        out = super().state(ema)
        out["vocab.concepts"] = np.array(self.tokenizer.concepts)
        return out

    @classmethod
    def from_state(cls, state, path="checkpoint"):
        if str(state.get("kind", "")) != "fastnn-diffusion":
            raise CheckpointError(f"{path} is not a fastnn diffusion checkpoint "
                                  f"(no kind=fastnn-diffusion entry)")
        kwargs = {}
        for k, f in ShapesConfig.__dataclass_fields__.items():
            if f"config.{k}" not in state:
                if k in _SHAPES_LEGACY:      # written before the field existed
                    kwargs[k] = _SHAPES_LEGACY[k]
                    continue
                raise CheckpointError(f"{path}: missing config.{k}")
            kwargs[k] = type(f.default)(np.asarray(state[f"config.{k}"]).item())
        diff = cls(ShapesConfig(**kwargs))
        saved = [str(c) for c in np.asarray(state.get("vocab.concepts", []))]
        if saved != diff.tokenizer.concepts:
            raise CheckpointError(f"{path}: its prompt vocabulary differs from this fastnn's "
                                  f"(the checkpoint was written by another version)")
        weights = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        try:
            diff.model.load_state_dict(weights)
        except (KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: weights do not match the model in its config: "
                                  f"{e}") from e
        return diff
