"""fastnn bench --roofline: measured roofs, kernels placed by intensity, the chart written."""
import numpy as np
import pytest

from fastnn.bench import roofline


def test_table_and_figure_from_a_result():
    pytest.importorskip("matplotlib")
    result = {"peak_gflops": 100.0, "peak_from": "numpy BLAS", "bandwidth_gbs": 10.0,
              "backend": "numpy",
              "points": [("relu", 0.125, 1.0, 0.1), ("matmul 1024", 171.0, 80.0, 0.03)]}
    table = roofline.format_roofline(result)
    assert "ridge at 10.0 FLOP/byte" in table
    # relu's roof is bandwidth x intensity = 1.25 GFLOP/s: 80% of it
    assert [ln for ln in table.splitlines() if ln.startswith("relu")][0].split()[-1] == "80%"
    fig = roofline.roofline_figure(result)
    assert {"relu", "matmul 1024"} <= {t.get_text() for t in fig.axes[0].texts}


def test_bench_roofline_cli(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.image as mpimg
    from fastnn.bench.cli import main
    # smaller arrays keep the test short; the measurement is the same
    monkeypatch.setattr(roofline, "measure_bandwidth_gbs",
                        lambda mib=64, repeat=5, f=roofline.measure_bandwidth_gbs: f(8, 1))
    out = tmp_path / "roof.png"
    assert main(["--roofline", str(out), "--repeat", "1", "--backends", "numpy"]) == 0
    text = capsys.readouterr().out
    assert "GFLOP/s" in text and "matmul 1024" in text and "chart written" in text
    img = mpimg.imread(str(out))
    assert img.shape[1] > 300 and img[..., :3].std() > 0.01
    rows = [ln.split() for ln in text.splitlines() if ln.startswith(("relu", "matmul 1024"))]
    assert len(rows) == 2 and all(float(r[-3]) > 0 for r in rows)


def test_best_seconds_counts_calls():
    calls = []
    s = roofline._best_seconds(lambda: calls.append(1), repeat=2, min_time=0.001)
    assert s > 0 and len(calls) > 2
    assert np.isfinite(s)
