"""Prompts for the shapes diffusion model: a word tokenizer (Spanish and English) and a small
trainable text encoder.

    tok = PromptTokenizer()
    tok.words("Un PEZ azúl")            # ['un', 'pez', 'azul']: lower case, accents folded
    ids = tok.encode(["un pez rojo", "a red fish"])      # (2, max_len) int64, 0 = padding
    enc = TextEncoder(tok.vocab_size, dim=64, out_dim=128)
    vec = enc(ids)              # (2, 128): one vector per prompt
    read_prompt("una casa roja sobre fondo de rayas")    # (1, 0, 1): house, red, stripes
    read_prompt("un pez rojo sobre fondo azul", bg_color=True)   # (4, 0, None, 5)

The tokenizer folds case and accents ("AZÚL", "azul" and "azúl" are one word) and maps
synonyms to one token: "rojo", "roja" and "red" are the same concept, as are "pez", "pescado"
and "fish". Words like "un", "a", "sobre", "on", "fondo", "background" are tokens too. A word
it does not know is an error that lists the ones it knows: the model was never shown it.

The encoder is not a table of whole prompts: each token gets an embedding plus one for its
position, one self-attention layer lets the words see each other (so "fondo de rayas" differs
from "rayas"), and a learned query attends over the tokens to pool them into one vector. The
same concepts in another order, or another language, land near the same vector, and a
combination never seen in training ("un pez rojo" with no red fish in the data) is made of
words that were.
"""
import unicodedata

import numpy as np

from .. import nn
from ..data.shapes import BACKGROUNDS, CLASSES, COLORS
from ..nn import functional as F
from ..tensor import Tensor, no_grad, tensor

__all__ = ["fold", "PromptTokenizer", "TextEncoder", "read_prompt", "make_prompt", "MAX_TOKENS"]

MAX_TOKENS = 10
PAD, NULL = 0, 1     # padding; the null prompt (classifier-free guidance's unconditional input)

# concept -> the words that mean it (after folding)
_OBJECTS = {
    "face": ["face", "faces", "cara", "caras", "rostro", "rostros"],
    "house": ["house", "houses", "casa", "casas", "home", "hogar"],
    "tree": ["tree", "trees", "arbol", "arboles"],
    "car": ["car", "cars", "coche", "coches", "carro", "carros", "auto", "autos", "automovil"],
    "fish": ["fish", "fishes", "pez", "peces", "pescado"],
    "flower": ["flower", "flowers", "flor", "flores"],
}
_COLORS = {
    "red": ["red", "rojo", "roja", "rojos", "rojas", "colorado", "colorada"],
    "orange": ["orange", "naranja", "naranjas", "anaranjado", "anaranjada", "naranjo"],
    "yellow": ["yellow", "amarillo", "amarilla", "amarillos", "amarillas"],
    "green": ["green", "verde", "verdes"],
    "cyan": ["cyan", "cian", "celeste", "turquesa", "teal", "turquoise"],
    "blue": ["blue", "azul", "azules"],
    "purple": ["purple", "violet", "morado", "morada", "violeta", "purpura", "lila"],
    "pink": ["pink", "rosa", "rosado", "rosada", "magenta"],
}
_BACKGROUNDS = {
    "plain": ["plain", "solid", "liso", "lisa", "uniforme"],
    "stripes": ["stripes", "striped", "stripy", "rayas", "rayado", "rayada", "franjas"],
    "dots": ["dots", "dotted", "spotted", "puntos", "lunares", "punteado"],
    "gradient": ["gradient", "degradado", "gradiente"],
}
_FUNCTION = {
    "a": ["a", "an", "the", "un", "una", "el", "la", "one", "uno"],
    "on": ["on", "over", "in", "sobre", "en"],
    "with": ["with", "con"],
    "of": ["of", "de", "del"],
    "background": ["background", "backdrop", "fondo"],
}


def fold(text):
    """Lower case, accents removed (NFKD, then ASCII): "AZÚL" -> "azul", "Árbol" -> "arbol"."""
    return unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()


class PromptTokenizer:
    """Words -> token ids. Token 0 pads, 1 is the null prompt; then one id per concept."""

    def __init__(self):
        self.concepts = (["<pad>", "<null>"] + [f"object:{c}" for c in _OBJECTS]
                         + [f"color:{c}" for c in _COLORS]
                         + [f"background:{c}" for c in _BACKGROUNDS]
                         + [f"word:{c}" for c in _FUNCTION])
        self.stoi = {}
        for kind, table in (("object", _OBJECTS), ("color", _COLORS),
                            ("background", _BACKGROUNDS), ("word", _FUNCTION)):
            for concept, words in table.items():
                for w in words:
                    self.stoi[w] = self.concepts.index(f"{kind}:{concept}")

    @property
    def vocab_size(self):
        return len(self.concepts)

    @staticmethod
    def words(prompt):
        """The folded words of a prompt (letters only; punctuation and digits separate)."""
        s = "".join(ch if ch.isalpha() else " " for ch in fold(prompt))
        return s.split()

    def tokens(self, prompt):
        """Token ids of one prompt (a list); ValueError on an unknown word or too many."""
        if not isinstance(prompt, str):
            raise TypeError(f"a prompt must be a str, got {type(prompt).__name__}")
        words = self.words(prompt)
        unknown = [w for w in words if w not in self.stoi]
        if unknown:
            raise ValueError(f"unknown word(s) {', '.join(map(repr, unknown))} in prompt "
                             f"{prompt!r}; the model knows objects ({_known(_OBJECTS)}), colours "
                             f"({_known(_COLORS)}) and backgrounds ({_known(_BACKGROUNDS)}), "
                             f"in Spanish or English")
        if not words:
            raise ValueError(f"the prompt {prompt!r} has no words")
        if len(words) > MAX_TOKENS:
            raise ValueError(f"the prompt {prompt!r} has {len(words)} words; at most "
                             f"{MAX_TOKENS}")
        return [self.stoi[w] for w in words]

    def encode(self, prompts, length=MAX_TOKENS):
        """(N, length) int64 ids of a list of prompts (one str is a list of one), 0-padded.
        None in the list is the null prompt (for classifier-free guidance)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        out = np.zeros((len(prompts), length), np.int64)
        for i, p in enumerate(prompts):
            ids = [NULL] if p is None else self.tokens(p)
            out[i, :len(ids)] = ids
        return out

    def null(self, n, length=MAX_TOKENS):
        """(n, length) ids of the null prompt."""
        out = np.zeros((n, length), np.int64)
        out[:, 0] = NULL
        return out


def _known(table):
    return "/".join(table)


# words after which a colour is the background's: "un pez rojo sobre fondo azul", "a red fish
# on a blue background", "una casa con fondo verde"
_BACKGROUND_CUES = {"word:on", "word:with", "word:background"}


def read_prompt(prompt, bg_color=False):
    """(object, colour, background) indices into shapes' CLASSES, COLORS, BACKGROUNDS, each
    None when the prompt does not say; with bg_color=True a fourth, the background's colour
    (index in COLORS or None). A colour after "sobre"/"on", "con"/"with" or "fondo"/
    "background" is the background's, one before them the object's. ValueError if the prompt
    names two of one kind."""
    tok = PromptTokenizer()
    found = {"object": [], "color": [], "background": [], "bg_color": []}
    after_cue = False
    for i in tok.tokens(prompt):
        concept = tok.concepts[i]
        after_cue = after_cue or concept in _BACKGROUND_CUES
        kind, _, name = concept.partition(":")
        if kind == "color" and after_cue:
            kind = "bg_color"
        if kind in found and name not in found[kind]:
            found[kind].append(name)
    for kind, names in found.items():
        if len(names) > 1:
            what = "background colour" if kind == "bg_color" else kind
            raise ValueError(f"the prompt {prompt!r} names more than one {what}: "
                             f"{', '.join(names)}")
    pick = lambda names, table: table.index(names[0]) if names else None  # noqa: E731
    out = (pick(found["object"], CLASSES), pick(found["color"], COLORS),
           pick(found["background"], BACKGROUNDS))
    return out + (pick(found["bg_color"], COLORS),) if bg_color else out


# ---------------------------------------------------------------- prompts for training
_ES_OBJECT = {"face": ("una", "cara"), "house": ("una", "casa"), "tree": ("un", "árbol"),
              "car": ("un", "coche"), "fish": ("un", "pez"), "flower": ("una", "flor")}
_ES_COLOR = {"red": ("rojo", "roja"), "orange": ("naranja", "naranja"),
             "yellow": ("amarillo", "amarilla"), "green": ("verde", "verde"),
             "cyan": ("cian", "cian"), "blue": ("azul", "azul"),
             "purple": ("morado", "morada"), "pink": ("rosa", "rosa")}
_ES_BG = {"plain": ["sobre fondo liso", "con fondo liso"],
          "stripes": ["sobre fondo de rayas", "con rayas", "sobre fondo rayado"],
          "dots": ["sobre fondo de puntos", "con puntos", "sobre fondo de lunares"],
          "gradient": ["sobre fondo degradado", "con fondo degradado"]}
_EN_BG = {"plain": ["on a plain background", "on plain"],
          "stripes": ["on a striped background", "with stripes", "on stripes"],
          "dots": ["on a dotted background", "with dots", "on dots"],
          "gradient": ["on a gradient background", "on a gradient"]}


# a background with a named colour C: "sobre fondo C de rayas" (fondo is masculine)
_ES_BG_COLOR = {None: ["sobre fondo {}", "con fondo {}"],
                "plain": ["sobre fondo {} liso", "con fondo {} liso"],
                "stripes": ["sobre fondo {} de rayas", "sobre fondo {} rayado"],
                "dots": ["sobre fondo {} de puntos", "sobre fondo {} de lunares"],
                "gradient": ["sobre fondo {} degradado", "con fondo {} degradado"]}
_EN_BG_COLOR = {None: ["on a {} background", "on {}"],
                "plain": ["on a plain {} background", "on plain {}"],
                "stripes": ["on a {} striped background", "on {} stripes"],
                "dots": ["on a {} dotted background", "on {} dots"],
                "gradient": ["on a {} gradient background", "on a {} gradient"]}


def make_prompt(rng, obj, color=None, background=None, lang=None, bg_color=None):
    """A prompt for shapes' class index obj, colour index (or None), background index (or
    None) and background colour index (or None), in Spanish ("una casa roja sobre fondo azul
    de rayas") or English ("a red house on a blue striped background"); lang "es", "en" or
    None (either, at random)."""
    lang = lang or ("es" if rng.random() < 0.5 else "en")
    name = CLASSES[obj]
    col = COLORS[color] if color is not None else None
    texture = BACKGROUNDS[background] if background is not None else None
    if lang == "es":
        art, noun = _ES_OBJECT[name]
        words = [art, noun] if rng.random() < 0.8 else [noun]
        if col is not None:
            words.append(_ES_COLOR[col][art == "una"])
        if bg_color is not None:
            words.append(str(rng.choice(_ES_BG_COLOR[texture])).format(
                _ES_COLOR[COLORS[bg_color]][0]))
        elif texture is not None:
            words.append(str(rng.choice(_ES_BG[texture])))
    else:
        words = ["a"] if rng.random() < 0.8 else []
        if col is not None:
            words.append(col)
        words.append(name)
        if bg_color is not None:
            words.append(str(rng.choice(_EN_BG_COLOR[texture])).format(COLORS[bg_color]))
        elif texture is not None:
            words.append(str(rng.choice(_EN_BG[texture])))
    return " ".join(words)


# ---------------------------------------------------------------- the encoder
class TextEncoder(nn.Module):
    """Token ids (N, L) -> one vector per prompt (N, out_dim): embeddings + positions, one
    pre-norm self-attention block over the prompt's tokens (padding masked), then attention
    pooling by a learned query."""

    def __init__(self, vocab_size, dim=64, out_dim=128, heads=4, max_len=MAX_TOKENS):
        super().__init__()
        if dim % heads:
            raise ValueError(f"TextEncoder: dim {dim} must be divisible by heads {heads}")
        self.dim, self.heads, self.max_len = int(dim), int(heads), int(max_len)
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU("tanh"), nn.Linear(2 * dim, dim))
        self.query = nn.Parameter(np.zeros((1, 1, dim), np.float32))
        self.ln_out = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)
        with no_grad():
            self.pos.weight._data *= 0.1

    def forward(self, ids):
        return self.encode(ids)[0]

    def encode(self, ids):
        """(pooled (N, out_dim), tokens (N, L, dim), keep (N, L) bool): the prompt's vector,
        each token's state after self-attention (what cross-attention reads), and which
        positions are real tokens (not padding)."""
        ids = tensor(np.asarray(ids._data if isinstance(ids, Tensor) else ids, np.int64))
        n, length = ids.shape
        if length > self.max_len:
            raise ValueError(f"TextEncoder: {length} tokens, at most {self.max_len}")
        keep = ids._data != PAD                                   # (N, L)
        h = self.tok(ids) + self.pos(tensor(np.arange(length)))
        hd = self.dim // self.heads
        q, k, v = self.qkv(self.ln1(h)).reshape(n, length, 3, self.heads, hd).permute(
            2, 0, 3, 1, 4).unbind(0)
        mask = keep[:, None, None, :]                             # attend to real tokens only
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = h + self.proj(a.permute(0, 2, 1, 3).reshape(n, length, self.dim))
        h = h + self.mlp(self.ln2(h))
        # pooling: one learned query over the tokens (single head)
        query = self.query.expand(n, 1, self.dim)
        pooled = F.scaled_dot_product_attention(query, h, h, attn_mask=keep[:, None, :])
        return self.out(self.ln_out(pooled.reshape(n, self.dim))), h, keep
