"""Shared test set-up: point scikit-learn at the shared data cache and quiet TensorFlow."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "SCIKIT_LEARN_DATA" not in os.environ and (SHARED_DATA / "scikit_learn_data").is_dir():
    os.environ["SCIKIT_LEARN_DATA"] = str(SHARED_DATA / "scikit_learn_data")
