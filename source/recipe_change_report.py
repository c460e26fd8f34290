"""Active learning under a changed default model, paired run by run with the committed benchmark.

    python source/recipe_change_report.py --new DIR --baseline TABLE [TABLE ...] --out DIR [--batch-size N]

The report ends with a per-AL-step table for the distinguishable rows (the padded minibatch layout's
KL weight per step, batch size from the default recipe unless --batch-size says). The code is in
al_bnn_lab.recipe_change; see its docstring.
"""

import sys

from al_bnn_lab.recipe_change import main

if __name__ == "__main__":
    sys.exit(main())
