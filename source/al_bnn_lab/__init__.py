"""The research harness: sweeps, the benchmark, the standard UCI protocol, the study and its report,
the model benchmark, the bench_* measurements and the two published comparisons. It imports the
library (`al_bnn`), which never imports it (tests/test_package.py checks both)."""
