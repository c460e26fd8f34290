"""TensorFlow, imported once and quietly.

On a CPU-only machine TensorFlow writes several lines of start-up chatter straight to the process's
stderr (oneDNN, CUDA stubs, "failed call to cuInit"), some before its logging is initialised, so
TF_CPP_MIN_LOG_LEVEL does not silence them all. They read like errors and carry no information for
a user of this package. The import and the device discovery run with file descriptor 2 redirected
to a temporary file; afterwards every line that is not known chatter is written back to stderr, so
a real error still shows. TF_CPP_MIN_LOG_LEVEL defaults to 2 (warnings and errors stay visible as
Python exceptions and warnings; set it to 0 to see TensorFlow's own info lines). A GPU, where
there is one, is used as before.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import TYPE_CHECKING

CHATTER = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|TF_ENABLE_ONEDNN_OPTS"
    r"|cudart_stub|Could not find cuda drivers|cpu_feature_guard|This TensorFlow binary is optimized"
    r"|To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags"
    r"|failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"
    r"|TF-TRT Warning|successful NUMA node read|could not open file to read NUMA node")


def _import_quietly():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # device discovery: where cuInit complains
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode(errors="replace").splitlines()
    kept = [line for line in lines if line.strip() and not CHATTER.search(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    return tensorflow


if TYPE_CHECKING:  # the type checker sees the module itself, so `tf.Tensor` is a valid annotation
    import tensorflow as tf
else:
    tf = _import_quietly() if "tensorflow" not in sys.modules else sys.modules["tensorflow"]
