"""What several whole-chain tests share: the chain's assets in order, and a Dagster environment in a folder."""

import os
from pathlib import Path

# The observable source, then every asset a photo goes through, in order.
SOURCE = "raw_image_files"
ASSETS = [
    "raw_images",
    "image_hashes",
    "duplicate_groups",
    "training_manifest",
    "fluke_detector",
    "fluke_boxes",
    "fluke_tensors",
    "fluke_keypoints",
    "fluke_outlines",
    "embedding_model",
    "gallery_index",
    "validation_report",
    "submission",
    "submission_matches",
    "review_queue",
    "decided_identities",
]


def dagster_environment(work: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `dagster`/`flukeid` subprocess with its own DAGSTER_HOME (created, telemetry off) and
    storage under `work`, reading `data_dir`, on the CPU."""
    home = work / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "FLUKEID_DATA_DIR": str(data_dir),
        "FLUKEID_STORAGE_DIR": str(work / "storage"),
        "FLUKEID_DEVICE": "cpu",
        "YOLO_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        **extra,
    }
