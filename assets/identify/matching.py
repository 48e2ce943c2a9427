"""Candidates that do not lose the whale, and the evidence on each (issue 13).

Follow one query photo: three independent generators rank the known individuals for it.
- The embedding: the individuals of its nearest gallery photos by embedding similarity (faiss).
- Keypoint votes: every RootSIFT descriptor of every gallery photo's fluke box sits in one faiss index; each of
  the query's descriptors votes for the individuals of its nearest gallery descriptors (LNBNN, as HotSpotter
  does; `models.keypoint_votes`). A pattern seen before is found even where the embedding ranks it low.
- The trailing edge (when the gallery and the queries have `fluke_outlines`): the individuals of the gallery
  photos whose traced edge is nearest the query's or its mirror image (`models.outline`). It reads the outline,
  not the pattern, so it finds whales whose gallery photos show little of the pattern (dorsal side, backlit,
  washed out, small or blurred).
Their rankings are fused (reciprocal rank), the first `candidates` individuals are verified by RANSAC on the
same box keypoints (each candidate's `photos` gallery photos with most votes, then the most similar ones), and
each (query, candidate) pair gets one row of evidence. `decision` turns the evidence into P(same whale).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from core.caches import KeyValueCache, cached_map
from core.digests import stable_digest
from models.keypoint_votes import DescriptorVotes, Votes, VoteSettings, fuse_candidates
from models.outline import edge_rankings as rank_by_edges
from models.retrieval import exact_index, search
from models.verification import LocalFeatures, count_inliers, one_library_thread

MATCHING_VERSION = "box-rootsift-ransac-1"  # bump when counting changes: cached inlier counts are then stale

# One row per (query, candidate individual); `query` is the query's position.
EVIDENCE_COLUMNS = [
    "query",
    "label",
    "fused_rank",
    "vote_score",
    "vote_share",
    "vote_rank",
    "embedding_similarity",
    "embedding_rank",
    "inliers",
    "inlier_share",
    "query_top_vote",
    "edge_rank",
    "edge_share",
]


@dataclass(frozen=True)
class MatchSettings:
    """How candidates are found and verified."""

    candidates: int = 20  # individuals per query verified and scored (fused ranking's first)
    photos: int = 3  # gallery photos per candidate matched (most votes first, then most similar)
    depth: int = 100  # positions of each generator's ranking that take part in the fusion
    embedding_neighbours: int = 300  # gallery photos searched by embedding per query
    vote_neighbours: int = 5  # k of LNBNN voting
    ratio: float = 0.8  # Lowe's ratio test
    reprojection_px: float = 4.0  # RANSAC inlier distance, in box-keypoint pixels
    workers: int = 2  # threads for matching (OpenCV and faiss release the GIL)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MatchSettings:
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})

    def pair_key(self, query_digest: str, gallery_digest: str) -> str:
        """Cache key of one pair's inlier count: both photos' keypoints and what counting depends on."""
        import cv2

        counting = (self.ratio, self.reprojection_px, MATCHING_VERSION, cv2.__version__)
        return stable_digest(counting, query_digest, gallery_digest)


def features_digest(features: LocalFeatures) -> str:
    """Content digest of one photo's keypoints (positions and descriptors)."""
    digest = hashlib.sha256(np.ascontiguousarray(features.points).tobytes())
    digest.update(np.ascontiguousarray(features.descriptors).tobytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class MatchGallery:
    """The known photos queries are matched against: keypoints, label and embedding of each."""

    features: Sequence[LocalFeatures]
    labels: list[str]
    embeddings: np.ndarray  # float32 N x D, L2-normalised
    edges: np.ndarray | None = (
        None  # float32 N x EDGE_SAMPLES traced trailing edges (NaN rows: none); None: unused
    )

    def votes_index(self, settings: MatchSettings) -> DescriptorVotes:
        descriptors = [f.descriptors for f in self.features]
        owners = np.repeat(np.arange(len(descriptors)), [len(d) for d in descriptors])
        stacked = np.concatenate(descriptors) if descriptors else np.zeros((0, 128), np.uint8)
        return DescriptorVotes(stacked, owners, self.labels, VoteSettings(k=settings.vote_neighbours))


@dataclass
class Matching:
    """Evidence per (query, candidate), each generator's ranking per query (for recall@k), and costs."""

    evidence: pd.DataFrame
    embedding_rankings: list[list[str]]
    vote_rankings: list[list[str]]
    fused_rankings: list[list[str]]
    stats: dict = field(default_factory=dict)
    edge_rankings: list[list[str]] | None = None  # None: the trailing edge took no part


def embedding_rankings(
    query_embeddings: np.ndarray, gallery: MatchGallery, neighbours: int
) -> list[list[tuple[str, float, int]]]:
    """Per query: (individual, best similarity, best gallery photo), most similar first (exact inner product)."""
    if len(gallery.labels) == 0:
        return [[] for _ in range(len(query_embeddings))]
    similarities, rows = search(exact_index(gallery.embeddings), query_embeddings, neighbours)
    rankings = []
    for sims, photos in zip(similarities, rows):
        seen: dict[str, tuple[str, float, int]] = {}
        for similarity, photo in zip(sims, photos):
            if photo >= 0 and gallery.labels[photo] not in seen:
                seen[gallery.labels[photo]] = (gallery.labels[photo], float(similarity), int(photo))
        rankings.append(list(seen.values()))
    return rankings


def photos_to_match(
    label: str, votes: Votes, query_embedding: np.ndarray, gallery: MatchGallery, rows_of: dict, count: int
) -> list[int]:
    """The candidate's gallery photos with most votes, then the most similar by embedding, `count` in all."""
    chosen = [int(p) for p in votes.best_photos(label, count)]
    if len(chosen) < count:
        rows = rows_of[label]
        by_similarity = rows[np.argsort(-(gallery.embeddings[rows] @ query_embedding), kind="stable")]
        chosen += [int(r) for r in by_similarity if int(r) not in chosen][: count - len(chosen)]
    return chosen


def candidate_rows(
    query: int,
    candidates: list[str],
    votes: Votes,
    embedded: list[tuple[str, float, int]],
    query_embedding: np.ndarray,
    gallery: MatchGallery,
    rows_of: dict,
    inliers: dict[tuple[int, int], int],
    photos: dict[str, list[int]],
    edged: Sequence[tuple[str, float]] = (),
) -> list[dict]:
    """The evidence rows of one query's candidates (`edged`: the query's trailing-edge ranking, (individual,
    distance) nearest first; empty without one)."""
    vote_scores = votes.as_dict()
    vote_rank = {label: r for r, label in enumerate(votes.ranking())}
    embedding_rank = {label: r for r, (label, _, _) in enumerate(embedded)}
    similarity = {label: s for label, s, _ in embedded}
    top_vote = float(votes.scores[0]) if len(votes.scores) else 0.0
    best = {label: max((inliers[(query, p)] for p in photos[label]), default=0) for label in candidates}
    best_inliers = max(best.values(), default=0)
    edge_rank = {label: r for r, (label, _) in enumerate(edged)}
    edge_distance = dict(edged)
    nearest_edge = edged[0][1] if edged else 0.0
    rows = []
    for rank, label in enumerate(candidates):
        if label not in similarity:  # outside the embedding's neighbours: its best photo, computed here
            similarity[label] = float((gallery.embeddings[rows_of[label]] @ query_embedding).max())
        rows.append(
            {
                "query": query,
                "label": label,
                "fused_rank": rank,
                "vote_score": float(vote_scores.get(label, 0.0)),
                "vote_share": float(vote_scores.get(label, 0.0)) / top_vote if top_vote > 0 else 0.0,
                "vote_rank": vote_rank.get(label, len(vote_rank)),
                "embedding_similarity": similarity[label],
                "embedding_rank": embedding_rank.get(label, len(embedding_rank)),
                "inliers": best[label],
                "inlier_share": best[label] / best_inliers if best_inliers > 0 else 0.0,
                "query_top_vote": top_vote,
                # not found by the edge (or the query has no traced edge): behind every individual of the gallery
                "edge_rank": edge_rank.get(label, len(rows_of)),
                # the query's nearest edge distance over this candidate's: 1 for the nearest, 0 when not found
                "edge_share": edge_share(nearest_edge, edge_distance.get(label)),
            }
        )
    return rows


def edge_share(nearest: float, distance: float | None) -> float:
    """How close a candidate's edge is relative to the query's nearest: nearest / distance in [0, 1] (1 when both
    are 0), 0 for a candidate the edge ranking did not find."""
    if distance is None:
        return 0.0
    if distance <= 0.0:
        return 1.0
    return float(min(1.0, nearest / distance))


def count_pair_inliers(
    pairs: list[tuple[int, int]],
    query_features: Sequence[LocalFeatures],
    gallery: MatchGallery,
    settings: MatchSettings,
    cache: KeyValueCache | None,
) -> tuple[dict[tuple[int, int], int], int]:
    """Inliers of each (query, gallery photo) pair, from the cache where known; returns (counts, computed)."""
    query_digests: dict[int, str] = {}
    gallery_digests: dict[int, str] = {}
    for q, g in pairs:
        if q not in query_digests:
            query_digests[q] = features_digest(query_features[q])
        if g not in gallery_digests:
            gallery_digests[g] = features_digest(gallery.features[g])
    keys = [settings.pair_key(query_digests[q], gallery_digests[g]) for q, g in pairs]

    def compute(positions: list[int]) -> list[int]:
        def one(position: int) -> int:
            q, g = pairs[position]
            return count_inliers(
                query_features[q], gallery.features[g], settings.ratio, settings.reprojection_px
            )

        with one_library_thread(), ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
            return list(pool.map(one, positions))

    counts, computed = cached_map(keys, compute, cache)
    return {pair: int(count) for pair, count in zip(pairs, counts)}, computed


def match_queries(
    query_features: Sequence[LocalFeatures],
    query_embeddings: np.ndarray,
    gallery: MatchGallery,
    settings: MatchSettings = MatchSettings(),
    inlier_cache: KeyValueCache | None = None,
    exclude: Sequence[int | None] | None = None,
    query_edges: np.ndarray | None = None,
) -> Matching:
    """Candidates and evidence for every query (`exclude[q]`: a gallery photo query q must not match, e.g.
    itself). The trailing edge takes part when both `query_edges` and the gallery's edges are given."""
    started = time.perf_counter()
    rows_of = {label: np.flatnonzero(np.asarray(gallery.labels) == label) for label in set(gallery.labels)}
    votes = gallery.votes_index(settings).vote([f.descriptors for f in query_features], exclude=exclude)
    embedded = embedding_rankings(query_embeddings, gallery, settings.embedding_neighbours)
    use_edges = query_edges is not None and gallery.edges is not None
    edged = (
        rank_by_edges(
            query_edges, gallery.edges, gallery.labels, settings.embedding_neighbours, exclude=exclude
        )
        if use_edges
        else [[] for _ in range(len(query_features))]
    )
    voted = time.perf_counter()
    emb_rankings = [[label for label, _, _ in ranking] for ranking in embedded]
    vote_rankings = [v.ranking() for v in votes]
    edge_rankings = [[label for label, _ in ranking] for ranking in edged]
    fused = [
        fuse_candidates([e, v, g] if use_edges else [e, v], settings.depth)[: settings.candidates]
        for e, v, g in zip(emb_rankings, vote_rankings, edge_rankings)
    ]
    photos = [
        {
            label: photos_to_match(label, votes[q], query_embeddings[q], gallery, rows_of, settings.photos)
            for label in fused[q]
        }
        for q in range(len(fused))
    ]
    pairs = sorted({(q, p) for q, chosen in enumerate(photos) for ps in chosen.values() for p in ps})
    inliers, computed = count_pair_inliers(pairs, query_features, gallery, settings, inlier_cache)
    rows = [
        row
        for q in range(len(fused))
        for row in candidate_rows(
            q,
            fused[q],
            votes[q],
            embedded[q],
            query_embeddings[q],
            gallery,
            rows_of,
            inliers,
            photos[q],
            edged[q],
        )
    ]
    evidence = pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)
    stats = {
        "queries": len(query_features),
        "gallery_photos": len(gallery.labels),
        "gallery_descriptors": int(sum(len(f) for f in gallery.features)),
        "pairs": len(pairs),
        "pairs_from_cache": len(pairs) - computed,
        "candidate_seconds": round(voted - started, 3),
        "verify_seconds": round(time.perf_counter() - voted, 3),
    }
    stats["edge_queries"] = int(sum(1 for ranking in edged if ranking)) if use_edges else 0
    return Matching(
        evidence,
        emb_rankings,
        vote_rankings,
        [list(f) for f in fused],
        stats,
        edge_rankings if use_edges else None,
    )
