"""Evaluation: the paper's metrics, pinned protocols and tables."""
