"""Write the diabetes template's data bundle from the copy scikit-learn ships in its wheel.

    python scripts/make-diabetes-data.py kaos/templates/diabetes

The 442 patients of Efron et al. (2004), "Least Angle Regression" (ten baseline measurements
and disease progression one year later), shuffled with a fixed seed and split into training,
validation and test, plus a second training file for the walkthrough's "more data" step.
Run once; the CSVs are committed as package data (the run needs scikit-learn).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

SPLITS = (  # (file under the template, rows)
    ("data/features/training/training.csv", 200),
    ("data/features/validation/validation.csv", 60),
    ("data/features/test/test.csv", 80),
    ("more-data/training-extra.csv", 102),
)
TARGET = "progression"


def main(template: Path) -> None:
    bunch = load_diabetes(scaled=False)
    header = [*bunch.feature_names, TARGET]
    rows = np.column_stack([bunch.data, bunch.target])
    order = np.random.default_rng(2004).permutation(len(rows))
    assert sum(n for _, n in SPLITS) == len(rows)
    start = 0
    for name, count in SPLITS:
        path = template / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for row in rows[order[start : start + count]]:
                writer.writerow([f"{v:g}" for v in row])
        start += count


if __name__ == "__main__":
    main(Path(sys.argv[1]))
