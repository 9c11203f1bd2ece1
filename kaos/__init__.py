"""kaos: incremental, content-addressed model training."""

__version__ = "0.1.0"
