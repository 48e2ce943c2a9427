"""`flukeid update` reruns only what is stale: through the CLI, with a persistent DAGSTER_HOME, on a tiny set."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from PIL import Image, ImageOps

from tests.chain import dagster_environment

REPO = Path(__file__).resolve().parents[1]
DOWNSTREAM_OF_TENSORS = {
    "fluke_tensors",
    "embedding_model",
    "gallery_index",
    "validation_report",
    "submission",
    "submission_matches",
    "review_queue",
    "decided_identities",
}


def _update(env: dict, profile: Path) -> tuple[str, set[str]]:
    command = [sys.executable, "-m", "pipelines.cli", "update", "--profile", str(profile)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ran = set(re.findall(r"^\s{2}(\w+)\s+(?:STALE|MISSING)", done.stdout, flags=re.MULTILINE))
    return done.stdout, ran


def _metadata(home: Path, asset: str) -> dict:
    with DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey(asset))
        return {key: value.value for key, value in event.asset_materialization.metadata.items()}


@pytest.mark.slow
def test_update_reruns_exactly_what_is_stale(tiny_dataset_copy, tmp_path):
    env = dagster_environment(tmp_path, tiny_dataset_copy)
    home = Path(env["DAGSTER_HOME"])
    tiny = (REPO / "configs" / "tiny.yaml").read_text()
    profile = tmp_path / "profile.yaml"
    profile.write_text(tiny)

    _, ran = _update(env, profile)
    assert "raw_images" in ran and "submission" in ran
    assert (tmp_path / "storage" / "submission.csv").exists()

    out, ran = _update(env, profile)
    assert ran == set() and "everything is up to date" in out

    # A comment in the profile is no change.
    profile.write_text("# tried a comment here\n" + tiny)
    out, ran = _update(env, profile)
    assert ran == set() and "everything is up to date" in out

    # A new crop size: fluke_tensors and exactly what lies downstream of it. (A new margin may not change the
    # tiny set's crops at all: its 3-epoch detector mostly falls back to whole photos, and then nothing reruns.)
    profile.write_text(
        tiny.replace(
            "fluke_tensors:\n    config: {height: 32, width: 64}",
            "fluke_tensors:\n    config: {height: 40, width: 80}",
        )
    )
    assert profile.read_text() != tiny
    _, ran = _update(env, profile)
    assert ran == DOWNSTREAM_OF_TENSORS

    # Five new photos: the per-image stages process those five and reuse everything else.
    test_dir = tiny_dataset_copy / "test"
    for path in sorted(test_dir.glob("*.jpg"))[:5]:
        with Image.open(path) as image:
            ImageOps.mirror(image).save(test_dir / f"new_{path.name}", quality=90)
    _, ran = _update(env, profile)
    assert {"raw_images", "image_hashes", "fluke_boxes", "fluke_tensors", "submission"} <= ran
    assert _metadata(home, "raw_images")["inspected"] == 5
    assert _metadata(home, "image_hashes")["hashed"] == 5
    assert _metadata(home, "fluke_boxes")["computed"] == 5
    assert _metadata(home, "fluke_tensors")["computed"] == 5
    # New test photos teach the model nothing: training finds its finished run, the gallery is reused.
    assert _metadata(home, "fluke_detector")["reused_previous_training"] is True
    assert _metadata(home, "gallery_index")["embedded"] == 0
    out, ran = _update(env, profile)
    assert ran == set()
