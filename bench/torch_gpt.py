"""nanoGPT's model in PyTorch: moved to fastnn/bench/torch_gpt.py (`fastnn bench --train` uses
it); this name stays for the tests and scripts that put bench/ on sys.path."""
from fastnn.bench.torch_gpt import GPT, MLP, Block, CausalSelfAttention, LayerNorm  # noqa: F401
