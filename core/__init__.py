"""The bottom layer: what every stage shares and nothing of the project is imported into.

constants (`NEW_WHALE`, `TOP`), atomic files, digests, per-item caches, the MAP@5 metric and scoring, process
parallelism, and the environment a run lives in (resources, profiles, metadata helpers). Modules here import only
third-party libraries; `tests/test_layers.py` fails when one imports the project.
"""
