"""Where the repository's own files are, for code run from a checkout (configs, shipped data,
the committed report). An installed copy without the checkout falls back to the working directory."""

from __future__ import annotations

from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]  # source/al_bnn/paths.py -> the repository root
REPO_ROOT = _CHECKOUT if (_CHECKOUT / "configs").is_dir() else Path.cwd()
SHIPPED_UCI_ROOT = REPO_ROOT / "data" / "uci"


def repo_file(path: str | Path) -> Path:
    """`path` as given, unless it does not exist and the repository root holds it (e.g. the
    default `configs/...` run from another folder); a missing file keeps the name the user gave."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPO_ROOT / path).exists():
        return path
    return REPO_ROOT / path
