"""Stage 1, ingest: every photo in the data folder becomes a manifest row (size, mode, content hash) or a
rejected row saying why not; the data folder itself is observed, never written."""
