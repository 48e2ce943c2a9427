"""Candidates from embedding and keypoint votes, fused, with RANSAC evidence on each."""

import numpy as np
import pytest

from assets.identify.matching import EVIDENCE_COLUMNS, MatchGallery, MatchSettings, match_queries
from core.caches import ValueCache
from core.constants import NEW_WHALE
from tests.assets.identify.keypoint_world import keypoint_world


@pytest.fixture(scope="module")
def world():
    return keypoint_world()


def gallery_of(world) -> MatchGallery:
    return MatchGallery(world["gallery_features"], world["gallery_labels"], world["gallery_embeddings"])


def test_the_known_whale_is_the_first_candidate_with_the_most_inliers(world):
    settings = MatchSettings(candidates=5, photos=2, workers=1)
    matching = match_queries(world["query_features"], world["query_embeddings"], gallery_of(world), settings)
    evidence = matching.evidence
    assert list(evidence.columns) == EVIDENCE_COLUMNS
    for q, truth in enumerate(world["truths"]):
        rows = evidence[evidence["query"] == q]
        assert len(rows) == 5 and rows["label"].is_unique
        if truth == NEW_WHALE:
            assert rows["inliers"].max() < 15  # chance matches only
            continue
        assert matching.vote_rankings[q][0] == truth
        assert (
            truth in matching.fused_rankings[q][:3]
        )  # kept among the candidates; evidence decides the order
        best = rows.sort_values("inliers", ascending=False).iloc[0]
        assert best["label"] == truth and best["inliers"] >= 20 and best["inlier_share"] == 1.0
        assert best["vote_share"] == 1.0 and best["vote_rank"] == 0
    # The weak embedding alone misses some whales that the votes find.
    embedding_first = [
        r[0] == t for r, t in zip(matching.embedding_rankings, world["truths"]) if t != NEW_WHALE
    ]
    assert not all(embedding_first)


def test_inlier_counts_come_from_the_cache_on_a_second_run(world, tmp_path):
    cache = ValueCache(tmp_path / "box_inliers.parquet", column="inliers")
    settings = MatchSettings(candidates=4, photos=2, workers=2)
    args = (world["query_features"], world["query_embeddings"], gallery_of(world), settings)
    first = match_queries(*args, inlier_cache=cache)
    second = match_queries(*args, inlier_cache=cache)
    assert first.stats["pairs_from_cache"] == 0 and first.stats["pairs"] > 0
    assert second.stats["pairs_from_cache"] == second.stats["pairs"]
    assert first.evidence.equals(second.evidence)
    # A changed counting setting is another key: recomputed, not reused.
    other = match_queries(*args[:3], MatchSettings(candidates=4, photos=2, ratio=0.7), inlier_cache=cache)
    assert other.stats["pairs_from_cache"] == 0


def test_a_query_may_not_match_its_own_gallery_photo(world):
    gallery = gallery_of(world)
    # Query the gallery's own first photo of w_0: without the exclusion it finds itself.
    features, embeddings = [gallery.features[0]], gallery.embeddings[:1]
    settings = MatchSettings(candidates=3, photos=1, workers=1)
    itself = match_queries(features, embeddings, gallery, settings)
    assert itself.evidence["inliers"].max() >= 100
    excluded = match_queries(features, embeddings, gallery, settings, exclude=[0])
    assert excluded.evidence["label"].iloc[0] == "w_0"  # still found, through its other photos
    assert excluded.evidence["inliers"].max() < itself.evidence["inliers"].max()


def test_queries_without_keypoints_still_get_candidates(world):
    from models.verification import EMPTY

    matching = match_queries(
        [EMPTY], world["query_embeddings"][:1], gallery_of(world), MatchSettings(workers=1)
    )
    assert len(matching.evidence) > 0
    assert (matching.evidence["inliers"] == 0).all() and (matching.evidence["vote_score"] == 0).all()


def whale_edges(world, seed: int = 5):
    """A distinct trailing edge per whale (`tests.models.test_outline.shapes`), each photo's a noisy copy."""
    from tests.models.test_outline import shapes

    rng = np.random.default_rng(seed)
    base = {f"w_{i}": edge for i, edge in enumerate(shapes(16, seed))}
    gallery = np.stack(
        [base[label] + rng.normal(0, 0.001, base[label].shape) for label in world["gallery_labels"]]
    )
    queries = np.stack(
        [base.get(truth, base["w_15"]) + rng.normal(0, 0.001, base["w_0"].shape) for truth in world["truths"]]
    )
    return gallery.astype(np.float32), queries.astype(np.float32)


def test_the_trailing_edge_finds_whales_that_neither_pattern_generator_does(world):
    from models.verification import EMPTY

    gallery_edges, query_edges = whale_edges(world)
    known = [q for q, truth in enumerate(world["truths"]) if truth != NEW_WHALE]
    # The pattern is unreadable (no keypoints) and the embedding weak: two candidates often miss the whale ...
    features = [EMPTY] * len(known)
    embeddings = world["query_embeddings"][known]
    truths = [world["truths"][q] for q in known]
    settings = MatchSettings(candidates=2, photos=1, workers=1)
    without = match_queries(features, embeddings, gallery_of(world), settings)
    assert without.edge_rankings is None and (without.evidence["edge_share"] == 0).all()
    missed = sum(truth not in ranking for truth, ranking in zip(truths, without.fused_rankings))
    assert missed > 0
    # ... and the trailing edge puts every one of them among the candidates, nearest first.
    gallery = MatchGallery(
        world["gallery_features"], world["gallery_labels"], world["gallery_embeddings"], gallery_edges
    )
    found = match_queries(features, embeddings, gallery, settings, query_edges=query_edges[known])
    assert [ranking[0] for ranking in found.edge_rankings] == truths
    assert all(truth in ranking for truth, ranking in zip(truths, found.fused_rankings))
    best = found.evidence[
        found.evidence["label"] == np.asarray(truths, dtype=object)[found.evidence["query"]]
    ]
    assert (best["edge_rank"] == 0).all() and (best["edge_share"] == 1.0).all()
    assert found.stats["edge_queries"] == len(known)


def test_a_query_without_a_traced_edge_ranks_every_candidate_last_by_edge(world):
    gallery_edges, query_edges = whale_edges(world)
    query_edges[0] = np.nan  # not traced
    gallery = MatchGallery(
        world["gallery_features"], world["gallery_labels"], world["gallery_embeddings"], gallery_edges
    )
    settings = MatchSettings(candidates=3, photos=1, workers=1)
    found = match_queries(
        world["query_features"][:2],
        world["query_embeddings"][:2],
        gallery,
        settings,
        query_edges=query_edges[:2],
    )
    untraced = found.evidence[found.evidence["query"] == 0]
    individuals = len(set(world["gallery_labels"]))
    assert (untraced["edge_rank"] == individuals).all() and (untraced["edge_share"] == 0).all()
    assert (
        found.edge_rankings[0] == []
        and found.evidence.loc[found.evidence["query"] == 1, "edge_rank"].min() == 0
    )
