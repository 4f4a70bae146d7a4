"""The in-place AdamW step over 4M parameters (PyTorch: torch.optim.AdamW, fused)."""


def test_adamw(run_case, bench_case, impl):
    run_case(bench_case, impl)
