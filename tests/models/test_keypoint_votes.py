"""LNBNN descriptor voting, candidate fusion and recall, on hand-made descriptors."""

import faiss
import numpy as np
import pytest

from core.constants import NEW_WHALE
from models.keypoint_votes import (
    DescriptorVotes,
    VoteSettings,
    fuse_candidates,
    index_kind,
    index_memory_bytes,
    recall_at_k,
)


def rootsift_like(rng: np.random.Generator, count: int) -> np.ndarray:
    """Non-negative, mostly small components with unit L2 norm before scaling, as RootSIFT's are."""
    raw = rng.gamma(0.5, 1.0, (count, 128))
    raw /= raw.sum(axis=1, keepdims=True)
    return np.clip(np.sqrt(raw) * 380, 0, 255).astype(np.uint8)


def noisy(rng: np.random.Generator, descriptors: np.ndarray, spread: int = 12) -> np.ndarray:
    shaken = descriptors.astype(int) + rng.integers(-spread, spread + 1, descriptors.shape)
    return np.clip(shaken, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def gallery():
    """40 photos of 20 whales (two photos each), 60 descriptors per photo."""
    rng = np.random.default_rng(3)
    photos, per = 40, 60
    descriptors = rootsift_like(rng, photos * per)
    owner = np.repeat(np.arange(photos), per)
    labels = [f"whale_{photo // 2:02d}" for photo in range(photos)]
    return descriptors, owner, labels


def test_a_noisy_copy_of_a_photo_votes_for_its_whale_first(gallery):
    descriptors, owner, labels = gallery
    rng = np.random.default_rng(0)
    votes = DescriptorVotes(descriptors, owner, labels)
    assert votes.kind == "flat"
    query = noisy(rng, descriptors[owner == 7][:40])
    (found,) = votes.vote([query])
    assert found.labels[0] == labels[7] and found.descriptors == 40
    assert found.ranking(1) == [labels[7]] and found.as_dict()[labels[7]] == pytest.approx(found.scores[0])
    assert (np.diff(found.scores) <= 0).all() and (found.scores >= 0).all()
    assert found.photos[0] == 7 and found.best_photos(labels[7], 2)[0] == 7
    assert set(found.photo_labels[found.photos == 7]) == {labels[7]}


def test_scores_follow_the_lnbnn_rule(gallery):
    # An independent loop over one exact search: k voters weigh d_{k+1} - d_j, one vote per individual.
    descriptors, owner, labels = gallery
    query = noisy(np.random.default_rng(1), descriptors[owner == 12][:15], spread=30)
    k = 5
    (found,) = DescriptorVotes(descriptors, owner, labels, VoteSettings(k=k)).vote([query])
    index = faiss.IndexFlatL2(128)
    index.add(descriptors.astype(np.float32))
    squared, neighbours = index.search(query.astype(np.float32), k + 1)
    distance = np.sqrt(np.maximum(squared, 0))
    expected: dict[str, float] = {}
    for row in range(len(query)):
        seen = set()
        for j in range(k):
            label = labels[owner[neighbours[row, j]]]
            if label not in seen:
                seen.add(label)
                expected[label] = expected.get(label, 0.0) + distance[row, k] - distance[row, j]
    got = found.as_dict()
    assert set(got) == set(expected)
    for label, score in expected.items():
        assert got[label] == pytest.approx(score, rel=1e-4, abs=1e-3)


def test_exact_and_ivf_agree_on_the_top_individual():
    # 30k descriptors, 300 photos of 100 whales; the IVF path is forced by lowering exact_below.
    rng = np.random.default_rng(5)
    photos, per = 300, 100
    descriptors = rootsift_like(rng, photos * per)
    owner = np.repeat(np.arange(photos), per)
    labels = [f"w{photo // 3}" for photo in range(photos)]
    sources = rng.choice(photos, 12, replace=False)
    queries = [noisy(rng, descriptors[owner == photo][:50]) for photo in sources]
    exact = DescriptorVotes(descriptors, owner, labels, VoteSettings(exact_below=10**9))
    approximate = DescriptorVotes(descriptors, owner, labels, VoteSettings(exact_below=1000))
    assert exact.kind == "flat" and approximate.kind == "ivf-sq8"
    exact_top = [found.labels[0] for found in exact.vote(queries)]
    approximate_votes = approximate.vote(queries)
    assert exact_top == [found.labels[0] for found in approximate_votes] == [labels[p] for p in sources]
    # a rebuild (same fixed-seed training sample) gives the same votes
    again = DescriptorVotes(descriptors, owner, labels, VoteSettings(exact_below=1000)).vote(queries)
    for first, second in zip(approximate_votes, again):
        assert list(first.labels) == list(second.labels) and np.allclose(first.scores, second.scores)


def test_8bit_direct_codes_find_what_ivfflat_finds():
    rng = np.random.default_rng(8)
    descriptors = rootsift_like(rng, 8000)
    votes = DescriptorVotes(
        descriptors, np.arange(8000) // 50, [f"w{i}" for i in range(160)], VoteSettings(exact_below=0)
    )
    queries = noisy(rng, descriptors[:300]).astype(np.float32)
    flat_lists = faiss.IndexIVFFlat(faiss.IndexFlatL2(128), 128, votes.index.nlist)
    flat_lists.train(votes.index.quantizer.reconstruct_n(0, votes.index.nlist))  # the very same centroids
    flat_lists.add(descriptors.astype(np.float32))
    flat_lists.nprobe = votes.index.nprobe
    expected_squared, expected = flat_lists.search(queries, 6)
    squared, neighbours = votes.index.search(queries, 6)
    assert (neighbours == expected).mean() > 0.999 and np.allclose(squared, expected_squared, rtol=1e-5)


def test_memory_figures():
    assert index_kind(19_999) == "flat" and index_kind(20_000) == "ivf-sq8"
    assert index_memory_bytes(10_000) == 10_000 * 512
    assert index_memory_bytes(10_000_000) == 10_000_000 * 136  # 1.36 GB for 25k photos x 400 descriptors


def test_a_query_photo_in_the_gallery_does_not_vote_for_itself(gallery):
    descriptors, owner, labels = gallery
    votes = DescriptorVotes(descriptors, owner, labels)
    itself = descriptors[owner == 20]
    (plain,) = votes.vote([itself])
    assert plain.photos[0] == 20
    (excluded,) = votes.vote([itself], exclude=[20])
    assert 20 not in excluded.photos.tolist()
    # its other photo of the same whale (21) still gets votes, and excluding both removes the whale
    (both,) = votes.vote([itself], exclude=[{20, 21}])
    assert labels[20] not in both.labels.tolist()
    # exclusions are per query: the second query, not excluded, still finds photo 20
    first, second = votes.vote([itself, itself], exclude=[20, None])
    assert 20 not in first.photos.tolist() and second.photos[0] == 20


def test_empty_queries_and_tiny_galleries(gallery):
    descriptors, owner, labels = gallery
    votes = DescriptorVotes(descriptors, owner, labels)
    empty, full, none_at_all = votes.vote([np.zeros((0, 128), np.uint8), descriptors[:5], np.zeros(0)])
    assert len(empty.labels) == 0 and empty.descriptors == 0 and len(full.labels) > 0
    assert len(none_at_all.photos) == 0
    assert votes.vote([]) == []
    # fewer than k + 1 gallery descriptors: the last neighbour is the background, no crash
    tiny = DescriptorVotes(descriptors[:3], np.array([0, 0, 1]), ["a", "b"], VoteSettings(k=5))
    (found,) = tiny.vote([descriptors[:2]])
    assert set(found.labels) <= {"a", "b"} and len(found.labels) >= 1 and np.isfinite(found.scores).all()
    (nothing,) = DescriptorVotes(descriptors[:1], np.array([0]), ["a"]).vote([descriptors[:2]])
    assert len(nothing.labels) == 0
    (blank,) = DescriptorVotes(np.zeros((0, 128), np.uint8), np.zeros(0, int), []).vote([descriptors[:2]])
    assert len(blank.labels) == 0


def test_the_gallery_is_checked(gallery):
    descriptors, owner, labels = gallery
    with pytest.raises(ValueError, match=NEW_WHALE):
        DescriptorVotes(descriptors, owner, [NEW_WHALE] + labels[1:])
    with pytest.raises(TypeError, match="uint8"):
        DescriptorVotes(descriptors.astype(np.float32), owner, labels)
    with pytest.raises(ValueError, match="photo ids"):
        DescriptorVotes(descriptors, owner + 1, labels)


def test_fuse_candidates():
    embedding = ["a", "b", "c", "d"]
    votes = ["c", "a", NEW_WHALE, "e"]
    # a: 1/10 + 1/11, c: 1/12 + 1/10, b: 1/11, d: 1/13, e: 1/13 (positions count as written: new_whale is
    # skipped but keeps its place)
    fused = fuse_candidates([embedding, votes], depth=10)
    assert fused[:3] == ["a", "c", "b"] and set(fused) == {"a", "b", "c", "d", "e"} and NEW_WHALE not in fused
    assert fused[3:] == ["d", "e"]  # equal scores 1/13: the earlier ranking wins the tie
    assert fuse_candidates([embedding, votes], depth=1) == ["a", "c"]
    assert fuse_candidates([["x", "x", "y"]], depth=5) == ["x", "y"]
    assert fuse_candidates([], depth=5) == []


def test_recall_at_k():
    ranked = [["a", "b", "c"], ["b", "a"], ["c"], ["a"]]
    truths = ["a", "a", "z", NEW_WHALE]
    assert recall_at_k(ranked, truths, ks=(1, 2, 5)) == {
        1: pytest.approx(1 / 3),
        2: pytest.approx(2 / 3),
        5: pytest.approx(2 / 3),
    }
    assert recall_at_k([["a"]], [NEW_WHALE], ks=(1,)) == {1: 0.0}
    with pytest.raises(ValueError):
        recall_at_k([["a"]], ["a", "b"])
