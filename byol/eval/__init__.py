"""Evaluation from pure cores: one feature extractor feeds kNN (and later linear probe, export)."""
