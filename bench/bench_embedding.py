"""Embedding: row gather forward + scatter-add backward (PyTorch: embedding_dense_backward)."""


def test_embedding(run_case, bench_case, impl):
    run_case(bench_case, impl)
