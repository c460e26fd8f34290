"""A study question whose results folder holds another config's sweep is refused before --reuse copies
runs in or counts them (a refused part once left the report saying more runs were reused than exist)."""
import pytest

from al_bnn.results import ResultsDirectoryExistsError
from al_bnn_lab import study


def test_reuse_into_another_configs_folder_is_refused_before_anything_is_copied_or_counted(tmp_path, monkeypatch):
    raw = study.question_sweep("q9", quick=True)
    output = tmp_path / "q9"
    output.mkdir()
    (output / "config.yaml").write_text("fingerprint: another-config\n")
    copied = []

    def fake_reuse(config, out, sources, writer):  # stands in for a source holding 3 matching runs
        copied.append(out)
        return {"elsewhere": 3}

    monkeypatch.setattr(study, "reuse_runs", fake_reuse)
    wall_times = study.WallTimes(tmp_path / "wall_times.json")
    with pytest.raises(ResultsDirectoryExistsError, match="holds a sweep of a different config"):
        study.run_sweep("q9", raw, tmp_path, 1, wall_times, reuse=[tmp_path / "elsewhere"])
    assert copied == []
    assert "reused_runs" not in wall_times.entries.get("q9", {})
    assert (output / "config.yaml").read_text() == "fingerprint: another-config\n"
