"""The sampler benchmark runs, prints its table, and reports agreement of the picks."""

from al_bnn_lab import bench_samplers


def test_benchmark_prints_a_row_per_method_and_the_ratios(monkeypatch, capsys):
    sizes = [bench_samplers.Size(20, 300, 30, 25), bench_samplers.Size(20, 5000, 30, 20, ("lowrank",))]
    monkeypatch.setattr(bench_samplers, "QUICK", sizes)
    assert bench_samplers.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| 20 | 300 | 30 | 25 | fast |" in out and out.count("| True |") == 2  # fast and lowrank == batch
    assert "| 20 | 5000 | 30 | 20 | batch | not run |" in out
    assert "lowrank is" in out and "faster than fast" in out


def test_dense_methods_are_skipped_when_they_would_not_fit(monkeypatch, capsys):
    monkeypatch.setattr(bench_samplers, "QUICK", [bench_samplers.Size(10, 400, 10, 5)])
    monkeypatch.setattr(bench_samplers, "available_bytes", lambda: 100_000)  # pretend 100 kB are free
    bench_samplers.main(["--quick"])
    out = capsys.readouterr().out
    assert "| fast | not run | | skipped: needs about" in out
