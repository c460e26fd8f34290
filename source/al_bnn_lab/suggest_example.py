"""The suggest walk-through (source/suggest_example.py): split a shipped UCI dataset into
labelled.csv, pool.csv and answers.csv, then "label" suggest's picks by looking them up, so the
README's loop runs end to end without a real lab. A demo, not part of the library's `suggest`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from al_bnn.errors import AlBnnError
from al_bnn.results import ResultsWriter
from al_bnn.suggest import SuggestInputError

# -- the README's walk-through: split a shipped dataset, then "label" suggestions by looking them up --
COLUMN_NAMES = {"airfoil": ["frequency", "angle", "chord", "velocity", "thickness", "sound_pressure"]}


def split_example(dataset: str, n_labelled: int, directory: str | os.PathLike, seed: int = 0) -> list[Path]:
    """Write DIR/labelled.csv (n_labelled random rows with the target), DIR/pool.csv (the other rows,
    without it) and DIR/answers.csv (every row's id and target: the "lab" to look labels up in)."""
    import pandas as pd

    from al_bnn.data import read_uci_folder, uci_root

    features, target = read_uci_folder(uci_root() / dataset)
    names = COLUMN_NAMES.get(dataset, [f"x{i}" for i in range(features.shape[1])] + ["y"])
    frame = pd.DataFrame(features, columns=names[:-1])
    frame.insert(0, "id", [f"{dataset}-{i}" for i in range(len(frame))])
    frame[names[-1]] = target
    if not 2 <= n_labelled < len(frame):
        raise SuggestInputError(f"--labelled {n_labelled}: choose between 2 and {len(frame) - 1} for {dataset}")
    from al_bnn.randomness import numpy_generator

    chosen = np.zeros(len(frame), dtype=bool)
    chosen[numpy_generator(seed, "suggest_example").choice(len(frame), n_labelled, replace=False)] = True
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SuggestInputError(f"--dir {directory}: cannot be created as a folder ({error.strerror or error}); give "
                                "another --dir") from None
    files = {"labelled.csv": frame[chosen], "pool.csv": frame[~chosen].drop(columns=names[-1]),
             "answers.csv": frame[["id", names[-1]]]}
    writer = ResultsWriter(directory, overwrite=True)
    for name, table in files.items():
        writer.write_text(name, table.to_csv(index=False))
    return [directory / name for name in files]


def label_example(directory: str | os.PathLike, suggestions: str | os.PathLike) -> int:
    """Look the suggested ids up in DIR/answers.csv and append those rows to DIR/labelled.csv."""
    import pandas as pd

    directory = Path(directory)
    for path in (directory / "labelled.csv", directory / "answers.csv", Path(suggestions)):
        if not path.is_file():
            raise SuggestInputError(f"{path}: file not found; `split --dir {directory}` writes labelled.csv and "
                                    "answers.csv, suggest --id-column id writes suggestions.csv")
    labelled = pd.read_csv(directory / "labelled.csv", dtype={"id": str})
    answers = pd.read_csv(directory / "answers.csv", dtype={"id": str}).set_index("id")
    picked = pd.read_csv(suggestions, dtype={"id": str})
    if "id" not in picked.columns:
        raise SuggestInputError(f"{suggestions}: no id column; run suggest with --id-column id")
    new = picked[[c for c in labelled.columns if c in picked.columns]].copy()
    target = [c for c in labelled.columns if c not in picked.columns]
    unknown = sorted(set(new["id"]) - set(answers.index))
    if unknown:
        raise SuggestInputError(f"{suggestions}: id(s) {unknown[:5]} are not in {directory / 'answers.csv'}; use the "
                                "suggestions of a pool split into this --dir")
    new[target[0]] = answers.loc[new["id"], target[0]].to_numpy()
    new = new[~new["id"].isin(labelled["id"])]
    combined = pd.concat([labelled, new[labelled.columns]], ignore_index=True)
    ResultsWriter(directory, overwrite=True).write_text("labelled.csv", combined.to_csv(index=False))
    return len(new)


def example_main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The suggest walk-through: split a shipped dataset into "
                                                 "labelled.csv, pool.csv and answers.csv, or label suggestions.")
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="write DIR/labelled.csv, DIR/pool.csv and DIR/answers.csv")
    split.add_argument("--dataset", default="airfoil", help="a UCI set shipped in data/uci (default: airfoil)")
    split.add_argument("--labelled", type=int, default=30, help="labelled rows to start with (default: 30)")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--dir", required=True)
    label = commands.add_parser("label", help="append the suggested rows, with their answers, to DIR/labelled.csv")
    label.add_argument("--dir", required=True)
    label.add_argument("--suggestions", required=True, help="a suggestions.csv written by suggest")
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            for path in split_example(args.dataset, args.labelled, args.dir, args.seed):
                print(f"wrote {path}")
        else:
            print(f"appended {label_example(args.dir, args.suggestions)} labelled row(s) to "
                  f"{Path(args.dir) / 'labelled.csv'}")
    except AlBnnError as error:  # what a user can fix; anything else is a bug and keeps its traceback
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


__all__ = ["example_main", "label_example", "split_example"]


if __name__ == "__main__":
    sys.exit(example_main())
