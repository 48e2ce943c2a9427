"""The one identification path, shared by `validation_report` and `submission`.

Follow one query photo: its crop is embedded by the embedder handed in (or its embedding reused when it is
already a gallery photo), faiss finds its `k` nearest gallery photos, they are aggregated to candidate individuals
(`models.retrieval.individual_candidates`), the first `verification.candidates` individuals are verified
geometrically against the query crop (`models.verification.verify_candidates`), re-scored with the inlier weight
(`rescore`), and `new_whale` is placed at the threshold, rows short of five filled with the most frequent
individuals (`models.retrieval.place_new_whale`). Validation tunes the weight and the threshold on the
`Identification` this returns; the submission hands in the chosen ones and takes `predictions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faiss
import numpy as np
import pandas as pd

from assets.identify.gallery import Embedder, embed_rows, tensor_rows
from core.artifacts import GalleryIndex
from core.constants import TOP
from models.retrieval import (
    Candidates,
    exact_index,
    index_from_bytes,
    individual_candidates,
    most_frequent_labels,
    place_new_whale,
    search,
)
from models.verification import InlierCache, VerificationSettings, Verified, rescore, verify_candidates


@dataclass(frozen=True)
class Gallery:
    """What queries are identified against: row i of `index` is `embeddings[i]`, photo of `labels[i]`, whose crop
    is row `crop_rows[i]` of the crop store (verification reads it)."""

    index: faiss.Index
    labels: list[str]
    embeddings: np.ndarray
    crop_rows: np.ndarray

    @classmethod
    def stored(cls, gallery_index: GalleryIndex, tensor_index: pd.DataFrame) -> Gallery:
        """The whole gallery with the index `gallery_index` was built with (the submission's)."""
        gallery = gallery_index["gallery"]
        return cls(
            index=index_from_bytes(gallery_index["index"]),
            labels=gallery["label"].tolist(),
            embeddings=np.asarray(gallery_index["embeddings"], dtype=np.float32),
            crop_rows=tensor_rows(tensor_index, gallery["image"], "train"),
        )

    @classmethod
    def subset(cls, gallery_index: GalleryIndex, rows: np.ndarray, tensor_index: pd.DataFrame) -> Gallery:
        """Gallery rows `rows` only, exactly searched (validation's train fold)."""
        gallery = gallery_index["gallery"].set_index("row").loc[rows]
        embeddings = np.asarray(gallery_index["embeddings"], dtype=np.float32)[rows]
        return cls(
            index=exact_index(embeddings),
            labels=gallery["label"].tolist(),
            embeddings=embeddings,
            crop_rows=tensor_rows(tensor_index, gallery["image"], "train"),
        )


@dataclass(frozen=True)
class Queries:
    """The photos to identify: each one's row of the crop store and, where `reuse` is set, an embedding already
    made (a val photo of a known individual is also a gallery photo) that is taken instead of embedding again."""

    crop_rows: np.ndarray
    reuse: np.ndarray | None = None  # bool N
    embeddings: np.ndarray | None = None  # float32 N x D; rows where `reuse` is False are ignored


@dataclass(frozen=True)
class IdentifySettings:
    """How queries are identified. Without `verification` (or with `candidates = 0`) the embedding alone ranks;
    without `threshold` no predictions are made (validation tunes it on the returned candidates)."""

    k: int = 100  # gallery neighbours searched per query before aggregating to individuals
    verification: VerificationSettings | None = None
    weight: float = 0.0  # score bonus per inlier
    threshold: float | None = None  # new_whale goes in front of the first individual scored below it

    @property
    def verifies(self) -> bool:
        return self.verification is not None and self.verification.enabled

    @classmethod
    def validated(cls, summary: dict, k: int) -> IdentifySettings:
        """The settings `validation_report` chose (its `summary`): its threshold and, when it verified, the
        verification settings and inlier weight, so the submission applies exactly what was validated."""
        verification = summary.get("verification")
        return cls(
            k=k,
            verification=VerificationSettings.from_dict(verification) if verification else None,
            weight=float(verification["weight"]) if verification else 0.0,
            threshold=float(summary["threshold"]),
        )


@dataclass
class Identification:
    """Per query: the embedding's candidate individuals (label, similarity), best first; with verification their
    inlier counts; the rows (`predictions`) when a threshold was given. `stats`: verified pairs and how many
    came from the cache."""

    embeddings: np.ndarray
    candidates: Candidates
    verified: Verified | None
    fill_labels: list[str]
    inlier_cap: int = 0
    predictions: list[list[str]] | None = None
    stats: dict = field(default_factory=dict)

    def scored(self, weight: float) -> Candidates:
        """Candidates ranked by `similarity + weight * min(inliers, cap)` (the embedding alone unverified)."""
        if self.verified is None:
            return self.candidates
        return rescore(self.verified, weight, self.inlier_cap)

    def rows(self, weight: float, threshold: float) -> list[list[str]]:
        """Five labels per query: the scored candidates with `new_whale` placed at `threshold`."""
        return place_new_whale(self.scored(weight), threshold, fill_labels=self.fill_labels)


def query_embeddings(queries: Queries, embed: Embedder, crops: np.ndarray) -> np.ndarray:
    """Embeddings of the queries: reused where `queries.reuse` says, the rest embedded from their crops."""
    rows = np.asarray(queries.crop_rows, dtype=np.int64)
    if queries.reuse is None:
        return embed_rows(embed, crops, rows)
    reuse = np.asarray(queries.reuse, dtype=bool)
    result = np.zeros((len(rows), queries.embeddings.shape[1]), np.float32)
    result[reuse] = queries.embeddings[reuse]
    if (~reuse).any():
        result[~reuse] = embed_rows(embed, crops, rows[~reuse])
    return result


def embedding_candidates(
    index: faiss.Index, labels: list[str], embeddings: np.ndarray, k: int, top: int = TOP
) -> Candidates:
    """faiss search, then the first `top` individuals per query with their best similarity."""
    similarities, neighbours = search(index, embeddings, k)
    return individual_candidates(similarities, neighbours, labels, top=top)


def identify(
    queries: Queries,
    gallery: Gallery,
    embed: Embedder,
    crops: np.ndarray,
    settings: IdentifySettings,
    inlier_cache: InlierCache | None = None,
) -> Identification:
    """Identify `queries` (rows of the crop store `crops`) against `gallery` with the embedder `embed`."""
    fill = most_frequent_labels(gallery.labels)
    verification = settings.verification if settings.verifies else None
    if len(queries.crop_rows) == 0:
        empty = Identification(np.zeros((0, 0), np.float32), [], [] if verification else None, fill)
        empty.predictions = [] if settings.threshold is not None else None
        return empty
    embeddings = query_embeddings(queries, embed, crops)
    # Verification re-scores more individuals than the five a row shows.
    top = max(TOP, verification.candidates) if verification else TOP
    candidates = embedding_candidates(gallery.index, gallery.labels, embeddings, settings.k, top)
    verified, stats = None, {}
    if verification:
        verified = verify_candidates(
            candidates,
            embeddings,
            crops[np.asarray(queries.crop_rows, dtype=np.int64)],
            gallery.embeddings,
            gallery.labels,
            lambda rows: crops[gallery.crop_rows[rows]],
            verification,
            cache=inlier_cache,
            stats=stats,
        )
    identification = Identification(
        embeddings, candidates, verified, fill, verification.inlier_cap if verification else 0, stats=stats
    )
    if settings.threshold is not None:
        identification.predictions = identification.rows(settings.weight, settings.threshold)
    return identification
