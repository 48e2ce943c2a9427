"""Folds: the train photos later stages learn from, one per duplicate group under its canonical label, with a
deterministic validation fold."""
