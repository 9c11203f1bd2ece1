"""Executors run builds and trains; all share one contract (see base.py and DESIGN.md)."""
