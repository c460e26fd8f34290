"""The suggest walk-through's helper: split a shipped dataset, then "label" suggestions.

    python source/suggest_example.py split --dataset airfoil --labelled 30 --dir demo
    python source/suggest_example.py label --dir demo --suggestions demo/round/suggestions.csv

The code is in al_bnn_lab.suggest_example (example_main).
"""

import sys

from al_bnn_lab.suggest_example import example_main

if __name__ == "__main__":
    sys.exit(example_main())
