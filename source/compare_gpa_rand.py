"""GPA against random selection on California housing (Tsymbalov et al. 2019's claim).

    python source/compare_gpa_rand.py [--seed 0 | --seeds 0 1 2 3 4] [--size-pool 0] [--size-test 0]
"""

import sys

from al_bnn_lab.published import compare_gpa_rand

if __name__ == "__main__":
    sys.exit(compare_gpa_rand())
