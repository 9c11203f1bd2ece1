"""Data loading and scoring for the mnist train script (numpy only, no pandas)."""

import glob
import gzip
import os

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def load_split(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All `*.csv.gz` files of a split, concatenated: label first, then the 784 pixels."""
    files = sorted(glob.glob(os.path.join(data_dir, "features", split, "*.csv.gz")))
    if not files:
        raise SystemExit(f"no {split} data: expected features/{split}/*.csv.gz in the data bundle")
    parts = []
    for path in files:
        with gzip.open(path, "rt") as f:
            parts.append(np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2))
    table = np.vstack(parts)
    return table[:, 1:], table[:, 0].astype(int)


def accuracy_and_f1(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    return float(accuracy_score(truth, predicted)), float(f1_score(truth, predicted, average="macro"))
