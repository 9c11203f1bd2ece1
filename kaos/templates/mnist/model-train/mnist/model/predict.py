"""Serve the mnist classifier (the kaos serving contract): 784 grey levels in, the digit out.

    kaos serve deploy -m MODEL_ID

`load` gets the folder the train script wrote as <output_dir>/model/; `predict` gets a list of
rows, one image each, and answers one digit per row.
"""

import os
import pickle

import numpy as np

FEATURES = 784  # requests with rows of another width are refused with a 400


def load(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "model.pkl"), "rb") as f:
        return pickle.load(f)


def predict(model: dict, rows: list) -> list:
    pixels = np.asarray(rows, dtype=np.float64)
    return model["classifier"].predict(model["scaler"].transform(pixels)).astype(int).tolist()
