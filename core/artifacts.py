"""The values handed from one asset to the next, declared once for every stage.

A stage never imports another stage, so what one stage hands on and the next reads is declared here, in the
bottom layer: a `TypedDict` for each dict-valued asset (its parts and their types), a column list for each
DataFrame-valued asset and for each table part of a dict. The producing stage builds the value with these
declarations and annotates its asset's return with them; every stage that reads it annotates its input with the
same declaration. The artifact IO manager stores one file per part (DataFrame -> `.parquet`, array -> `.npy`,
loaded back memory-mapped, bytes -> `.bin`, anything else -> `.json`), so a `dict` part comes back as JSON.

Pure typing: no Dagster here; `core.dagster_types` makes the TypedDicts usable as Dagster types. (No
`from __future__ import annotations` in this module: on Python 3.11 it hides `NotRequired` from
`__required_keys__`.)
"""

from typing import NotRequired, TypedDict

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------------------------
# raw_images (ingest)

IMAGE_COLUMNS = [
    "image",
    "split",
    "label",
    "path",
    "width",
    "height",
    "mode",
    "is_grayscale",
    "bytes",
    "content_hash",
    "converted",
]
"""`raw_images["images"]`: one row per accepted photo, sorted by (split, image): its file name, split (`train` or
`test`), label (None for test photos), path relative to the data folder, size in pixels of the photo upright
(after its EXIF orientation: the frame of every box and crop), the file's PIL mode, whether it is grayscale, file
size in bytes, `content_hash` (sha256 of the file's bytes) and `converted`: what decoding it changes
(`core.images.conversions` joined by `+`, e.g. `png`, `cmyk`, `16-bit`, `palette`, `exif-rotation`; empty for a
plain L or RGB JPEG)."""

REJECTED_COLUMNS = ["image", "split", "label", "reason", "detail"]
"""`raw_images["rejected"]`: one row per rejected file or train.csv row, sorted by (split, image): why (`reason`,
one of `assets.ingest.scan.ALL_REASONS`, or of `assets.ingest.encounters.ENCOUNTER_REASONS` for a row of
encounters.csv, split `encounters`) and the specifics (`detail`)."""


REVIEW_COLUMNS = ["image", "decision", "label", "reviewer", "time"]
"""`raw_images["reviews"]`: one row per test photo with a standing review decision (`core.decisions`): `same`
(confirmed as the known or review-created individual `label`), `new` (a new individual, `label` its created id) or
`unsure` (no label). `same` and `new` photos also appear as labelled train rows of `images`."""

ENCOUNTER_COLUMNS = ["image", "split", "encounter", "source"]
"""`raw_images["encounters"]`: one row per accepted photo in an encounter (photos of one whale taken together,
identified together), sorted by (split, image): its name and split, the encounter's id (free text from
`encounters.csv`, or `exif-<first image>` for photos grouped by their EXIF times) and where the encounter came from
(`source`: `file` or `exif`). A photo in no encounter has no row (`assets.ingest.encounters`)."""


class RawImages(TypedDict):
    """The value of `raw_images`: what the data folder holds, photo by photo (a photo is never dropped silently:
    it is accepted or rejected with a reason)."""

    images: pd.DataFrame
    """The accepted photos (`IMAGE_COLUMNS`)."""
    rejected: pd.DataFrame
    """The rejected inputs and why (`REJECTED_COLUMNS`)."""
    reviews: NotRequired[pd.DataFrame]
    """The review decisions applied (`REVIEW_COLUMNS`): each decided photo's standing decision after undos."""
    encounters: NotRequired[pd.DataFrame]
    """The photos marked as one encounter (`ENCOUNTER_COLUMNS`); absent in artifacts written before encounters."""
    source: NotRequired["RawImagesSource"]
    """What the data folder was read as (JSON); absent in artifacts written before the Happywhale layout, which
    were all `kaggle2019`."""


class RawImagesSource(TypedDict):
    """`raw_images["source"]`: the layout train.csv's header named (`core.formats`: `kaggle2019` or `happywhale`)
    and the species kept (`FlukeData.species`; "" when none was filtered out: every species, or a layout without a
    species column). The submission is written in the layout's own format."""

    layout: str
    species: str


# ---------------------------------------------------------------------------------------------------------------
# image_hashes (dedup): a DataFrame

HASH_COLUMNS = ["image", "split", "content_hash", "phash"]
"""The value of `image_hashes`: one row per accepted photo (in `raw_images["images"]` order), its content hash
and its 64-bit perceptual hash as 16 hex characters."""

# ---------------------------------------------------------------------------------------------------------------
# duplicate_groups (dedup)

GROUP_COLUMNS = ["image", "split", "group", "representative", "label"]
"""`duplicate_groups["groups"]`: one row per accepted photo (train and test): its duplicate group (numbered by
representative), whether it represents the group (bool), and the group's canonical label."""

ALIAS_COLUMNS = ["label", "canonical"]
"""`duplicate_groups["aliases"]`: one row per known id that a group joins to another: the id and the canonical id
it stands for."""

MATCH_COLUMNS = ["image", "train_image", "label", "distance"]
"""`duplicate_groups["test_matches"]`: one row per test photo grouped with train photos: the nearest train member,
the group's label and their pHash Hamming distance (bits of 64)."""


class DuplicateGroups(TypedDict):
    """The value of `duplicate_groups`: which photos are one picture, and what that reveals about labels."""

    groups: pd.DataFrame
    """Every photo's duplicate group (`GROUP_COLUMNS`)."""
    aliases: pd.DataFrame
    """Known ids that are one individual (`ALIAS_COLUMNS`)."""
    test_matches: pd.DataFrame
    """Test photos that duplicate train photos (`MATCH_COLUMNS`)."""


# ---------------------------------------------------------------------------------------------------------------
# training_manifest (folds): a DataFrame

TRAINING_MANIFEST_COLUMNS = ["image", "label", "fold", "individual_photos"]
"""The value of `training_manifest`: one row per kept train photo (duplicates removed, aliases merged): its
canonical label, its fold (`train` or `val`) and the kept photos of that individual (1 for new_whale: each is
its own unknown)."""

# ---------------------------------------------------------------------------------------------------------------
# fluke_detector (detect)


class FlukeDetector(TypedDict):
    """The value of `fluke_detector`: the detector `fluke_boxes` runs, or the reason there is none."""

    info: dict
    """JSON: `trained`, `source` (trained | weights_path | none), `reason` (why not trained, '' when trained),
    `annotations`, `epochs`, `imgsz`, `model_yaml`; with annotations `train_photos`, `val_photos` and the held-out
    `mAP50`, `mAP50-95`; with a model its `version` (a hash of the weights); when trained here
    `training_seconds`, `history` (per epoch: epoch, box_loss, mAP50, mAP50-95), `budget` (the
    `TrainingBudget` fields: what ran against `max_minutes`) and, on CUDA, `cuda_max_memory_mb`."""
    weights: NotRequired[bytes]
    """The ultralytics `.pt` file's bytes; absent when there is no model (every photo then falls back to its
    whole frame)."""


# ---------------------------------------------------------------------------------------------------------------
# fluke_boxes (detect): a DataFrame

BOX_COLUMNS = ["image", "split", "x0", "y0", "x1", "y1", "confidence", "fallback", "fallback_reason"]
"""The value of `fluke_boxes`: one row per accepted photo (in `raw_images["images"]` order), its box in original
pixels, the detector's confidence, and whether (`fallback`, bool) and why (`fallback_reason`) the whole photo
stands in for a box."""

# ---------------------------------------------------------------------------------------------------------------
# fluke_tensors (crop)

TENSOR_INDEX_COLUMNS = ["row", "image", "split"]
"""`fluke_tensors["index"]`: one row per accepted photo (in `raw_images["images"]` order): its row of
`fluke_tensors["tensors"]`, its name and split."""


class FlukeTensors(TypedDict):
    """The value of `fluke_tensors`: every photo cropped to its fluke and resized, ready for the network."""

    tensors: np.ndarray
    """uint8 N x C x H x W crops (memory-mapped when loaded back)."""
    index: pd.DataFrame
    """Which row is which photo (`TENSOR_INDEX_COLUMNS`)."""


# ---------------------------------------------------------------------------------------------------------------
# fluke_keypoints (keypoints)

KEYPOINT_INDEX_COLUMNS = ["image", "split", "start", "count"]
"""`fluke_keypoints["index"]`: one row per accepted photo (in `raw_images["images"]` order): its name and split,
its first keypoint row and its keypoint count (its slice of `points` and `descriptors` is `start : start +
count`)."""


class FlukeKeypoints(TypedDict):
    """The value of `fluke_keypoints`: every photo's keypoints in its fluke box, concatenated in manifest order
    (memory-mapped when loaded back)."""

    points: np.ndarray
    """float32 M x 2: x, y in resized-box pixels."""
    descriptors: np.ndarray
    """uint8 M x 128, row i describing point i."""
    index: pd.DataFrame
    """Which rows are which photo's (`KEYPOINT_INDEX_COLUMNS`)."""
    settings: NotRequired[dict]
    """JSON: the `models.keypoints.KeypointSettings` that made the points (`feature_settings()`: width, margin,
    ...), so a reader can rebuild the frame the points are in (`models.keypoints.box_image`)."""


OUTLINE_INDEX_COLUMNS = ["image", "split", "row", "traced", "reason"]
"""`fluke_outlines["index"]`: one row per accepted photo (in `raw_images["images"]` order): its name and split, its
row of `edges`, whether its trailing edge was traced, and why not (empty when traced)."""


class FlukeOutlines(TypedDict):
    """The value of `fluke_outlines`: every photo's trailing edge (`models.outline`), one row per photo."""

    edges: np.ndarray
    """float32 N x `models.outline.EDGE_SAMPLES`: heights in box widths, up positive; all NaN where not traced."""
    index: pd.DataFrame
    """Which row is which photo (`OUTLINE_INDEX_COLUMNS`)."""
    settings: dict
    """JSON: the `models.outline.OutlineSettings` that traced the edges."""


# ---------------------------------------------------------------------------------------------------------------
# embedding_model (train)


class TrainingBudget(TypedDict):
    """`EmbeddingModelInfo["budget"]`: how far a training went against its time budget (`max_minutes`). No
    minutes here: they are wall-clock, and the artifact's version must not follow them (the metadata shows them)."""

    max_minutes: float
    """The budget asked for; 0: none."""
    stopped_by_budget: bool
    """The budget ran out before the configured epochs."""
    epochs_configured: int
    epochs_completed: int
    steps_completed: int
    """Optimisation steps of the completed epochs."""


class EmbeddingModelInfo(TypedDict):
    """`EmbeddingModel["config"]`: enough to rebuild the network (`models.embedding.load_embedding_model`)."""

    model: dict
    """`models.embedding.EmbeddingSpec.to_dict()`."""
    training: dict
    """`models.training.TrainingConfig.to_dict()`."""
    input: dict
    """channels, height, width of the crops trained on."""
    embedding_dim: int
    """Dimension of the embeddings."""
    flip_tta_concatenates: bool
    """Trained with flip_as_new_class: flip TTA concatenates instead of averaging."""
    val_map5: float
    """The last validation's MAP@5 (NaN when never validated)."""
    val_threshold: float
    """And its tuned new_whale threshold."""
    code_version: str
    """The train stage's code version that made it."""
    budget: NotRequired[TrainingBudget]
    """Epochs and steps completed against the time budget (absent in models trained before budgets)."""


class EmbeddingModel(TypedDict):
    """The value of `embedding_model`: the trained embedding network and how its training went."""

    weights: bytes
    """The network's state dict, torch-saved (`models.embedding.weights_to_bytes`)."""
    config: EmbeddingModelInfo
    """JSON: how to rebuild the network and what it scored (`EmbeddingModelInfo`)."""
    history: pd.DataFrame
    """One row per epoch: mean losses, steps, throughput, timings, learning rate, val_map5 / val_threshold (NaN
    in an epoch without validation)."""


# ---------------------------------------------------------------------------------------------------------------
# gallery_index (identify)

GALLERY_COLUMNS = ["row", "image", "label"]
"""`gallery_index["gallery"]`: one row per known train photo (both folds, new_whale left out), sorted by image:
its row of the index and of `embeddings`, its name and canonical label."""


class GalleryIndex(TypedDict):
    """The value of `gallery_index`: every known train photo embedded and searchable."""

    index: bytes
    """faiss inner-product index, serialised; row i is gallery row i."""
    gallery: pd.DataFrame
    """Which row is which photo and individual (`GALLERY_COLUMNS`)."""
    embeddings: np.ndarray
    """float32 N x D, L2-normalised; row i of the index."""
    info: dict
    """JSON: index_type, size, dim, individuals, the index options, and `flip` (flip TTA, which validation and
    submission apply too)."""


# ---------------------------------------------------------------------------------------------------------------
# validation_report (identify)

PREDICTION_COLUMNS = ["image", "truth", "Id"]
"""`validation_report["predictions"]`: one row per val photo: its truth (its label if the train fold knows the
individual, else new_whale) and the five space-separated labels given."""


class ValidationReport(TypedDict):
    """The value of `validation_report`: how well the chain identifies the held-out fold, and the settings the
    submission applies."""

    summary: dict
    """JSON: map5, threshold (new_whale), verification (settings and chosen inlier weight, or None), subset and
    without-crop scores, baselines, query counts, gallery_size, k, flip."""
    per_rank: pd.DataFrame
    """`core.metrics.rank_statistics` of the chosen predictions: per rank, new_whale share and hits."""
    sweep: pd.DataFrame
    """The threshold sweep at the chosen weight: threshold, map5, new_whale_first_share."""
    predictions: pd.DataFrame
    """Each val photo's predictions (`PREDICTION_COLUMNS`)."""


# ---------------------------------------------------------------------------------------------------------------
# submission (identify): a DataFrame

SUBMISSION_COLUMNS = ["Image", "Id"]
"""The value of `submission`, Kaggle's format: one row per test photo (accepted or rejected by ingestion), its
five distinct space-separated labels."""

# ---------------------------------------------------------------------------------------------------------------
# review_queue, decided_identities (review)


class ReviewQueue(TypedDict):
    """The value of `review_queue`: the test photos a researcher reviews, most useful first
    (`assets.review.queue`; `review/` serves it)."""

    items: pd.DataFrame
    """One row per item (an encounter, else one photo), in review order: item, position, priority (expected MAP@5
    gain of deciding it), photos, top_label, top_probability, new_whale_probability."""
    photos: pd.DataFrame
    """item, image, path (relative to the data folder), box_x0..box_y1 (photo pixels; NaN: the whole photo)."""
    candidates: pd.DataFrame
    """Five rows per item: item, rank, label, probability, is_new_whale, inliers, vote_share,
    embedding_similarity, and the candidate's best-matching gallery photo (gallery_image, gallery_path,
    gallery_box_x0..y1)."""
    lines: pd.DataFrame
    """item, rank, qx, qy, gx, gy: RANSAC inlier pairs between the item's first photo and the candidate's gallery
    photo, in `models.keypoints.box_image` frames."""
    summary: dict
    """JSON: keypoint_width, keypoint_margin (the frame of the points), items, test_photos."""


IDENTITY_COLUMNS = ["image", "individual", "decided_by", "probability"]
"""The value of `decided_identities` (also `<storage>/decided_identities.csv`): one row per test photo, its
individual as decided by a reviewer (`review:<name>`, probability 1) or by the model (`model`, its P)."""

# ---------------------------------------------------------------------------------------------------------------
# experiment_run, experiment_comparison (experiments)


class ExperimentRun(TypedDict):
    """The value of one `experiment_run` partition (a variant and a seed; `assets.experiments.run`), stored under
    `<storage>/experiment_run/<experiment>.<variant>/<seed>/`."""

    summary: dict
    """JSON: experiment, variant, key, seed, overrides, the resolved training and identification settings,
    `metrics` (map5, map5_known, map5_new_whale, map5_embedding_only, map5_threshold_path, recall@k, hit_rank_1..5,
    train_seconds, epochs), `training_run` (run_key, budget, epochs), `data` (photos, queries, manifest_version)."""
    per_rank: pd.DataFrame
    """`core.metrics.rank_statistics` of the decided rows: per rank 1..5 the hits and the share first right there."""
    history: pd.DataFrame
    """The training's per-epoch history (as `EmbeddingModel["history"]`)."""


class ExperimentComparison(TypedDict):
    """The value of `experiment_comparison` (`assets.experiments.comparison`): every materialized partition, side
    by side per question; `flukeid experiments` prints `text["terminal"]`, `--write-docs` writes `text["markdown"]`
    and `plots`."""

    runs: pd.DataFrame
    """One row per partition: experiment, variant, key, seed and its metrics."""
    variants: pd.DataFrame
    """One row per variant: experiment, variant, seeds, and mean / std / min / max of each metric over seeds."""
    verdicts: pd.DataFrame
    """One row per experiment: question, metric, best variant, recipe and best means, gap, spread, given, text."""
    info: dict
    """JSON: seeds, budget_minutes, metric, profile, experiments file, data (folder, photos, queries), partitions
    materialized and missing."""
    text: dict
    """JSON: `terminal` (the tables as fixed-width text) and `markdown` (docs/experiments.md, images under `{images}`)."""
    plots: dict
    """JSON: experiment -> its plot, a base64 PNG."""


# ---------------------------------------------------------------------------------------------------------------

ARTIFACT_TYPES: dict[str, type] = {
    "raw_images": RawImages,
    "duplicate_groups": DuplicateGroups,
    "fluke_detector": FlukeDetector,
    "fluke_tensors": FlukeTensors,
    "fluke_keypoints": FlukeKeypoints,
    "fluke_outlines": FlukeOutlines,
    "embedding_model": EmbeddingModel,
    "gallery_index": GalleryIndex,
    "validation_report": ValidationReport,
    "review_queue": ReviewQueue,
    "experiment_run": ExperimentRun,
    "experiment_comparison": ExperimentComparison,
}
"""Each dict-valued asset and the TypedDict of its value."""

TABLE_COLUMNS: dict[str, list[str]] = {
    "image_hashes": HASH_COLUMNS,
    "training_manifest": TRAINING_MANIFEST_COLUMNS,
    "fluke_boxes": BOX_COLUMNS,
    "submission": SUBMISSION_COLUMNS,
    "decided_identities": IDENTITY_COLUMNS,
}
"""Each DataFrame-valued asset and its columns, in order."""
