"""The review page (`flukeid review`): a local web app where a researcher confirms or rejects the identification
of the most uncertain test photos; its decisions are appended to the decisions file (`core.decisions`).

Reads the `review_queue` artifact, never imports a stage: it imports only `core` and `models`.
"""
