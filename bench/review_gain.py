"""What reviewing buys: test MAP@5 after a reviewer decides the queue's 50 most uncertain photos, against deciding
50 random photos, with the generator's truth as the reviewer (a script, not a person), in one run.

Starts from a materialized demo set (data, storage and Dagster home, e.g. after `make demo`). For each arm it
copies the storage and the home to `--work/<arm>/`, writes that arm's decisions to its own decisions file there
(`FLUKEID_DECISIONS_FILE`; the data folder is never written), runs `flukeid update` (which reruns what the
decisions make stale: raw_images and downstream, training where its memo key changes) and scores the new
submission: on all test photos, and on the photos nobody reviewed (the gain that spreads through the gallery and
the retrained model). A reviewer's decision is the truth: `same` for a whale the gallery knows, `new` otherwise.
Cost: one update per arm (on the demo set about as long as validation plus submission, and embedding training).

    .venv/bin/python bench/review_gain.py --data data/demo --storage storage --home .dagster_home \\
        --work /tmp/review_gain [--reviews 50] [--profile demo] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def most_uncertain(storage: Path, count: int) -> list[str]:
    """The first `count` photos in review-queue order (an encounter's photos together)."""
    items = pd.read_parquet(storage / "review_queue" / "items.parquet").sort_values("position")
    photos = pd.read_parquet(storage / "review_queue" / "photos.parquet")
    ordered = photos.merge(items[["item", "position"]], on="item").sort_values(["position", "image"])
    return ordered["image"].head(count).tolist()


def random_photos(storage: Path, count: int, seed: int) -> list[str]:
    photos = sorted(pd.read_parquet(storage / "review_queue" / "photos.parquet")["image"])
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(photos, size=min(count, len(photos)), replace=False).tolist())


def truth_decisions(images: list[str], truths: dict[str, str], known: set[str]) -> list[tuple[str, str, str]]:
    """(image, decision, label) as a reviewer who knows the truth decides."""
    from core.decisions import new_individual_id

    return [
        (image, "same", truths[image]) if truths[image] in known else (image, "new", new_individual_id(image))
        for image in images
    ]


def map5(submission: Path, truths: dict[str, str], only: set[str] | None = None) -> float:
    from core.metrics import map_at_5

    rows = pd.read_csv(submission).set_index("Image")["Id"].str.split(" ")
    images = [image for image in truths if only is None or image in only]
    return map_at_5([rows[image] for image in images], [truths[image] for image in images])


def run_arm(name: str, images: list[str], args, truths: dict[str, str], known: set[str]) -> dict:
    from core.decisions import append_decision

    work = args.work / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(args.storage, work / "storage", symlinks=True)
    shutil.copytree(args.home, work / "home", symlinks=True)
    decisions = work / "decisions.csv"
    for image, decision, label in truth_decisions(images, truths, known):
        append_decision(decisions, image, decision, label, reviewer=f"truth-{name}")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "home"),
        "FLUKEID_STORAGE_DIR": str(work / "storage"),
        "FLUKEID_DATA_DIR": str(args.data.resolve()),
        "FLUKEID_DECISIONS_FILE": str(decisions),
        "YOLO_OFFLINE": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    started = time.perf_counter()
    with open(work / "update.log", "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "update", "--profile", args.profile],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        raise SystemExit(f"{name}: flukeid update failed, see {work / 'update.log'}")
    seconds = time.perf_counter() - started
    submission = work / "storage" / "submission.csv"
    rest = set(truths) - set(images)
    return {
        "arm": name,
        "reviewed": len(images),
        "map5": map5(submission, truths),
        "map5_not_reviewed": map5(submission, truths, rest),
        "update_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--storage", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True, help="the Dagster home the storage was made with")
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder for the arms' copies")
    parser.add_argument("--reviews", type=int, default=50)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seed", type=int, default=0, help="of the random arm")
    args = parser.parse_args()

    solution = pd.read_csv(args.data / "solution.csv")
    truths = dict(zip(solution["Image"], solution["Id"]))
    known = set(pd.read_parquet(args.storage / "gallery_index" / "gallery.parquet")["label"])
    before = args.storage / "submission.csv"
    arms = {
        "most_uncertain": most_uncertain(args.storage, args.reviews),
        "random": random_photos(args.storage, args.reviews, args.seed),
    }
    print(f"before review: MAP@5 {map5(before, truths):.4f} on {len(truths)} test photos")
    results = []
    for name, images in arms.items():
        result = run_arm(name, images, args, truths, known)
        result["map5_before"] = map5(before, truths)
        result["map5_not_reviewed_before"] = map5(before, truths, set(truths) - set(images))
        results.append(result)
        print(
            f"{name:>15}: {result['reviewed']} reviewed, MAP@5 {result['map5_before']:.4f} -> "
            f"{result['map5']:.4f} (+{result['map5'] - result['map5_before']:.4f}); not reviewed "
            f"{result['map5_not_reviewed_before']:.4f} -> {result['map5_not_reviewed']:.4f}; "
            f"update {result['update_seconds']:.0f} s",
            flush=True,
        )
    table = pd.DataFrame(results)
    gain = table.set_index("arm")["map5"] - table.set_index("arm")["map5_before"]
    ratio = gain["most_uncertain"] / gain["random"] if gain["random"] > 0 else float("inf")
    print(table.to_string(index=False))
    print(f"gain of the most uncertain 50 / gain of 50 random: {ratio:.2f}x")


if __name__ == "__main__":
    main()
