"""Causal attention (B=1, H=8, T=1024, D=64), forward and forward + backward
(PyTorch: F.scaled_dot_product_attention with is_causal, backward through autograd)."""


def test_attention(run_case, bench_case, impl):
    run_case(bench_case, impl)
