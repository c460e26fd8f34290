"""Run the study (joint vs marginal samples, MC vs exact kernel, sample count, precision, cost;
second edition: which method when, does the model matter, what each method costs) and write its
report.

    python source/run_study.py                      # every question; report -> docs/study.md
    python source/run_study.py --questions q1 q2    # some questions (the study runs in parts)
    python source/run_study.py --questions q6 q7 q8 # the second edition (q7 needs q6's results)
    python source/run_study.py --quick              # tiny sizes, into results_study_quick/
    python source/run_study.py --results-dir DIR    # runs and report (DIR/study.md) into DIR
    python source/run_study.py --report-only        # rebuild the report from the runs so far

The code is in al_bnn_lab.study; see its docstring for details.
"""

import sys

from al_bnn_lab.study import main

if __name__ == "__main__":
    sys.exit(main())
