"""Experiments: the notebook's questions as a sweep (configs/experiments.yaml). Each variant and seed is a partition
of `experiment_run`, trained like `embedding_model` within a time budget and scored like `validation_report`;
`experiment_comparison` sets the variants side by side per question, with their spread over seeds and a verdict
only where the gap exceeds it. This stage composes two others: it imports the plain modules of `assets.train` and
`assets.identify` (the one exception to the layer rule, tests/test_layers.py), never their assets.py."""
