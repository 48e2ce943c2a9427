"""Candidate individuals from local-descriptor voting (LNBNN, as in HotSpotter / Wildbook).

Every gallery keypoint descriptor sits in one faiss index. Each query descriptor looks up its k + 1 nearest
gallery descriptors; the k nearest vote for the individual (and the photo) they belong to with weight
d_{k+1} - d_j: a neighbour much closer than the (k+1)-th, the local background, is distinctive; one about as far
as the background says nothing. One vote per individual (and per photo) per query descriptor, so a photo with
repetitive texture cannot outvote the rest through one descriptor. Summed over the query's descriptors, the
scores rank the individuals; the per-photo scores let verification pick each candidate's best photos.

The index, by gallery size M (bytes per gallery descriptor; 10M = 25k photos x 400 descriptors):
- M < `exact_below`: exact `IndexFlatL2`, float32, 512 B (20k descriptors: 10 MB; 10M would be 5.1 GB);
- otherwise `IndexIVFScalarQuantizer` with 8-bit *direct* codes, 128 B + 8 B id (10M: 1.36 GB; an IVFFlat
  would need 520 B, 5.2 GB). The descriptors are bytes already, so direct codes store them exactly: the same
  neighbours and distances as IVFFlat (checked by a test), a quarter of the memory, and a faster search.
The IVF index has nlist = 4 sqrt(M) lists, trained on a fixed-seed sample, so a rebuild gives the same votes.
This class also keeps 4 B per descriptor (its photo); descriptors become float32 one chunk at a time, never all.
Why the exact index stops early: a flat search costs (query descriptors) x M, IVF training about
train_per_list x 16 x iterations x M distance computations, so IVF is cheaper once a search has more than
~10k query descriptors (25 photos), whatever M. Measured in one run on 2 shared cores, 130k gallery x 70k query
descriptors: flat search 108 s (50 s in a quieter run); IVF build 14 s (38 s with faiss' 25 k-means
iterations), search 3.5 s.

`fuse_candidates` merges the votes' ranking with the embedding's (reciprocal rank fusion); `recall_at_k`
measures whether a candidate list still holds the whale.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from core.constants import NEW_WHALE

IVF_ID_BYTES = 8  # faiss keeps an int64 id per vector in an inverted list


@dataclass(frozen=True)
class VoteSettings:
    """How descriptors vote. `nlist = 0`: 4 sqrt(M) inverted lists (capped so each trains on >= 39 points)."""

    k: int = 5  # voting neighbours; the (k+1)-th is the background distance
    nprobe: int = 16  # inverted lists searched per query descriptor (IVF only)
    exact_below: int = 20_000  # galleries with fewer descriptors get an exact index (see the module doc)
    nlist: int = 0
    train_per_list: int = 50  # k-means training sample per list (faiss wants >= 39)
    train_iterations: int = 10  # k-means iterations: 25 (faiss' default) took 2.7x longer, same neighbours
    chunk: int = 50_000  # query descriptors searched (and converted to float32) at a time
    exclude_margin: int = 8  # extra neighbours searched when a query's own photo must be skipped
    seed: int = 0  # of the training sample


def index_kind(count: int, settings: VoteSettings = VoteSettings()) -> str:
    """`flat` or `ivf-sq8`: the index a gallery of `count` descriptors gets."""
    return "flat" if count < settings.exact_below else "ivf-sq8"


def index_memory_bytes(count: int, dim: int = 128, settings: VoteSettings = VoteSettings()) -> int:
    """Approximate resident size of the index over `count` descriptors (centroids and overheads left out)."""
    if index_kind(count, settings) == "flat":
        return count * 4 * dim
    return count * (dim + IVF_ID_BYTES)


@dataclass(frozen=True)
class Votes:
    """One query's votes, best first (ties by label, then photo id, for reproducible rankings)."""

    labels: np.ndarray  # individuals that got a vote (str)
    scores: np.ndarray  # their summed LNBNN weights
    photos: np.ndarray  # gallery photo ids that got a vote
    photo_labels: np.ndarray  # each such photo's individual
    photo_scores: np.ndarray
    descriptors: int = 0  # query descriptors searched

    def ranking(self, depth: int | None = None) -> list[str]:
        return [str(label) for label in self.labels[:depth]]

    def as_dict(self) -> dict[str, float]:
        """label -> vote score; an individual missing from it got no vote (score 0)."""
        return dict(zip(self.labels.tolist(), self.scores.tolist()))

    def best_photos(self, label: str, count: int = 1) -> list[int]:
        """The individual's `count` gallery photos with the highest photo scores."""
        return self.photos[self.photo_labels == label][:count].tolist()


def empty_votes(descriptors: int = 0) -> Votes:
    nothing = np.zeros(0)
    return Votes(
        np.zeros(0, object), nothing, np.zeros(0, np.int64), np.zeros(0, object), nothing, descriptors
    )


def _as_descriptors(array: np.ndarray, dim: int | None = None) -> np.ndarray:
    array = np.asarray(array)
    if array.size == 0:
        return array.reshape(0, dim or (array.shape[-1] if array.ndim == 2 else 128))
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        raise ValueError(f"descriptors must be an N x {dim or 'D'} matrix; got shape {array.shape}")
    return array


def _sum_by_key(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.bincount(inverse.ravel(), weights=weights, minlength=len(unique))


class DescriptorVotes:
    """A faiss index over every gallery descriptor, each knowing its photo and that photo's individual.

    `descriptors`: uint8 M x D (RootSIFT scaled to 0..255); `photo_ids[i]`: the gallery photo of descriptor i,
    an index into `photo_labels`, which holds known individuals only (new_whale is never a candidate).
    """

    def __init__(
        self,
        descriptors: np.ndarray,
        photo_ids: np.ndarray,
        photo_labels: Sequence[str],
        settings: VoteSettings = VoteSettings(),
    ) -> None:
        descriptors = _as_descriptors(descriptors)
        if descriptors.dtype != np.uint8:
            # uint8 is what makes the 8-bit direct codes exact; a float input would be silently rounded.
            raise TypeError(f"gallery descriptors must be uint8 (0..255); got {descriptors.dtype}")
        photo_ids = np.asarray(photo_ids, dtype=np.int64).ravel()
        labels = np.asarray([str(label) for label in photo_labels], dtype=object)
        if len(photo_ids) != len(descriptors):
            raise ValueError(f"{len(photo_ids)} photo ids for {len(descriptors)} descriptors")
        if len(photo_ids) and (photo_ids.min() < 0 or photo_ids.max() >= len(labels)):
            raise ValueError(f"photo ids must index the {len(labels)} photo labels")
        if (labels == NEW_WHALE).any():
            raise ValueError(f"{NEW_WHALE!r} photos cannot be voted for: pass known individuals only")
        if settings.k < 1:
            raise ValueError(f"k must be at least 1; got {settings.k}")
        self.settings = settings
        self.dim = descriptors.shape[1]
        self.photo_count = len(labels)
        self.individuals, photo_label = np.unique(labels, return_inverse=True)
        self._photo_label = photo_label.astype(np.int64).ravel()
        self._owner = photo_ids.astype(np.int32)  # 4 B per descriptor rather than 8
        self.kind = index_kind(len(descriptors), settings)
        self.index = self._build(descriptors)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def memory_bytes(self) -> int:
        return index_memory_bytes(self.size, self.dim, self.settings) + self._owner.nbytes

    def _build(self, descriptors: np.ndarray) -> faiss.Index:
        settings, (count, dim) = self.settings, descriptors.shape
        if self.kind == "flat":
            index = faiss.IndexFlatL2(dim)
        else:
            lists = settings.nlist or int(4 * np.sqrt(count))
            lists = max(1, min(lists, count // 39))
            # 8-bit direct codes without residuals: each stored byte is the descriptor's own byte.
            index = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatL2(dim),
                dim,
                lists,
                faiss.ScalarQuantizer.QT_8bit_direct,
                faiss.METRIC_L2,
                False,
            )
            index.cp.niter = settings.train_iterations
            rng = np.random.default_rng(settings.seed)
            sample = np.sort(rng.choice(count, min(count, settings.train_per_list * lists), replace=False))
            index.train(descriptors[sample].astype(np.float32))
            index.nprobe = min(settings.nprobe, lists)
        for start in range(0, count, settings.chunk):
            index.add(np.ascontiguousarray(descriptors[start : start + settings.chunk], dtype=np.float32))
        return index

    def vote(
        self,
        query_descriptors_list: Sequence[np.ndarray],
        exclude: Sequence[int | Collection[int] | None] | None = None,
    ) -> list[Votes]:
        """Votes of each query (a D-column descriptor matrix each, any numeric dtype), one faiss search for all.

        `exclude[q]`: gallery photo id(s) query q must not vote for (the query photo itself, when validation
        queries train-fold photos that are also in the gallery; its duplicates too, if the caller knows them).
        Their neighbours are dropped before the k voters and the background are chosen; `exclude_margin` extra
        neighbours are searched to make up for them. Where fewer than k + 1 neighbours remain (a tiny gallery,
        an IVF probe that ran short), the last one left is the background and those before it vote.
        """
        queries = [_as_descriptors(q, self.dim) for q in query_descriptors_list]
        sizes = np.array([len(q) for q in queries], dtype=np.int64)
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(f"{len(exclude)} exclusions for {len(queries)} queries")
        excluded = self._exclusion_keys(exclude)
        if self.size < 2 or sizes.sum() == 0:
            return [empty_votes(int(n)) for n in sizes]
        stacked = np.concatenate([q for q in queries if len(q)])
        query_of = np.repeat(np.arange(len(queries), dtype=np.int64), sizes)
        width = min(self.settings.k + 1 + (self.settings.exclude_margin if len(excluded) else 0), self.size)
        label_parts: list[tuple[np.ndarray, np.ndarray]] = []
        photo_parts: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(stacked), self.settings.chunk):
            stop = start + self.settings.chunk
            block = np.ascontiguousarray(stacked[start:stop], dtype=np.float32)
            squared, neighbours = self.index.search(block, width)
            label_part, photo_part = self._weigh(query_of[start:stop], squared, neighbours, excluded)
            label_parts.append(label_part)
            photo_parts.append(photo_part)
        label_keys, label_sums = _sum_by_key(*(np.concatenate(part) for part in zip(*label_parts)))
        photo_keys, photo_sums = _sum_by_key(*(np.concatenate(part) for part in zip(*photo_parts)))
        return self._per_query(sizes, label_keys, label_sums, photo_keys, photo_sums)

    def _exclusion_keys(self, exclude: Sequence[int | Collection[int] | None] | None) -> np.ndarray:
        """query * photo_count + photo for each excluded (query, gallery photo) pair."""
        keys: list[int] = []
        for query, photos in enumerate(exclude or []):
            if photos is None:
                continue
            for photo in [photos] if np.isscalar(photos) else photos:
                if 0 <= int(photo) < self.photo_count:
                    keys.append(query * self.photo_count + int(photo))
        return np.unique(np.asarray(keys, dtype=np.int64))

    def _weigh(
        self, query_of: np.ndarray, squared: np.ndarray, neighbours: np.ndarray, excluded: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """(query, label) and (query, photo) keys with their LNBNN weights, for one block of query descriptors."""
        k = self.settings.k
        valid = neighbours >= 0
        photo = np.where(valid, self._owner[np.maximum(neighbours, 0)], -1).astype(np.int64)
        if len(excluded):
            valid &= ~np.isin(query_of[:, None] * self.photo_count + photo, excluded)
        # Move the usable neighbours to the front of each row (faiss order kept), then keep k + 1 of them.
        order = np.argsort(~valid, axis=1, kind="stable")[:, : k + 1]
        valid = np.take_along_axis(valid, order, axis=1)
        photo = np.take_along_axis(photo, order, axis=1)
        distance = np.sqrt(np.maximum(np.take_along_axis(squared, order, axis=1), 0.0))
        background_at = np.minimum(k, valid.sum(axis=1) - 1)  # -1: no neighbour at all
        rows = np.arange(len(valid))
        background = distance[rows, np.maximum(background_at, 0)]
        voting = np.arange(valid.shape[1])[None, :] < background_at[:, None]
        weight = background[:, None] - distance
        label = np.where(voting, self._photo_label[np.maximum(photo, 0)], -1)
        first_label = voting.copy()
        first_photo = voting.copy()
        for column in range(1, valid.shape[1]):  # one vote per individual / photo per query descriptor
            first_label[:, column] &= ~(label[:, :column] == label[:, column : column + 1]).any(axis=1)
            first_photo[:, column] &= ~(photo[:, :column] == photo[:, column : column + 1]).any(axis=1)
        query = np.broadcast_to(query_of[:, None], valid.shape)
        labels = _sum_by_key(
            query[first_label] * len(self.individuals) + label[first_label], weight[first_label]
        )
        photos = _sum_by_key(query[first_photo] * self.photo_count + photo[first_photo], weight[first_photo])
        return labels, photos

    def _per_query(
        self,
        sizes: np.ndarray,
        label_keys: np.ndarray,
        label_sums: np.ndarray,
        photo_keys: np.ndarray,
        photo_sums: np.ndarray,
    ) -> list[Votes]:
        label_query, label_index = np.divmod(label_keys, len(self.individuals))
        photo_query, photo_index = np.divmod(photo_keys, self.photo_count)
        label_bounds = np.searchsorted(label_query, np.arange(len(sizes) + 1))
        photo_bounds = np.searchsorted(photo_query, np.arange(len(sizes) + 1))
        found = []
        for query, size in enumerate(sizes):
            lo, hi = label_bounds[query], label_bounds[query + 1]
            plo, phi = photo_bounds[query], photo_bounds[query + 1]
            # keys are sorted by (query, index), so a stable sort on -score breaks ties by label / photo id
            by_label = np.argsort(-label_sums[lo:hi], kind="stable")
            by_photo = np.argsort(-photo_sums[plo:phi], kind="stable")
            photos = photo_index[plo:phi][by_photo]
            found.append(
                Votes(
                    labels=self.individuals[label_index[lo:hi][by_label]],
                    scores=label_sums[lo:hi][by_label],
                    photos=photos,
                    photo_labels=self.individuals[self._photo_label[photos]],
                    photo_scores=photo_sums[plo:phi][by_photo],
                    descriptors=int(size),
                )
            )
        return found


def fuse_candidates(rankings: Sequence[Sequence[str]], depth: int, offset: int = 10) -> list[str]:
    """Reciprocal rank fusion: each ranking's first `depth` labels score 1 / (offset + position), position
    counted from 0 (the prototype's rule); the fused list holds every label read, best total first.

    A label repeated within one ranking counts at its first position; new_whale is skipped (candidates are
    known individuals). Ties go to the label with the better best position, then to the earlier ranking.
    """
    total: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        seen: set[str] = set()
        for position, label in enumerate(list(ranking)[:depth]):
            if label == NEW_WHALE or label in seen:
                continue
            seen.add(label)
            total[label] = total.get(label, 0.0) + 1.0 / (offset + position)
            best[label] = min(best.get(label, (position, which)), (position, which))
    return sorted(total, key=lambda label: (-total[label], best[label]))


def recall_at_k(
    ranked: Sequence[Sequence[str]], truths: Sequence[str], ks: Sequence[int] = (1, 5, 10, 20, 50)
) -> dict[int, float]:
    """Share of known-whale queries (truth != new_whale) whose individual is among the first k candidates.

    0.0 for every k when no query has a known whale (the convention of `core.metrics.rank_statistics`).
    """
    if len(ranked) != len(truths):
        raise ValueError(f"{len(ranked)} candidate lists for {len(truths)} truths")
    known = [(list(row), truth) for row, truth in zip(ranked, truths) if truth != NEW_WHALE]
    return {int(k): float(np.mean([truth in row[:k] for row, truth in known])) if known else 0.0 for k in ks}
