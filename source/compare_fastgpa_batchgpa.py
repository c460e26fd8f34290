"""Fast GPA (rank-b covariance updates) against batch GPA (fresh solves): same picks, less time.

    python source/compare_fastgpa_batchgpa.py [--seed 0 | --seeds 0 1 2] [--size-pool 0] [--size-test 0]
"""

import sys

from al_bnn_lab.published import compare_fastgpa_batchgpa

if __name__ == "__main__":
    sys.exit(compare_fastgpa_batchgpa())
