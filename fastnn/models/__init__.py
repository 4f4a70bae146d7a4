"""fastnn.models: the lessons' models."""

# issue 5 (owned by fastnn/models/gpt.py)
from .gpt import GPT, GPTConfig  # noqa: E402,F401
