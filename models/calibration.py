"""P(same whale) for a (query, candidate individual) pair, from its evidence, and the row it implies.

The caller builds one row of evidence per pair (vote score, vote score over the query's top vote score, vote rank,
embedding similarity and rank, RANSAC inliers, inliers over the query's best, ...). `MatchCalibrator` fits a
logistic regression (scikit-learn) on standardised columns, after optional monotone transforms the caller names
per column (`TRANSFORMS`: log1p or sqrt for counts with a long tail, reciprocal for ranks). Prediction is plain
numpy on the fitted numbers, so `to_dict()` / `from_dict()` carry the model as JSON numbers inside a summary
from validation to submission: it is never pickled, and reading it back needs no scikit-learn object.

Calibration is measured honestly by `cross_validated_probabilities` (GroupKFold by query: a query's pairs are
never split between fitting and scoring), `expected_calibration_error` and `reliability_table`.

The row: MAP@5 with one true label is maximised by ordering labels by their probability of being the truth, so
`rank_with_new_whale` sorts the candidates by P(same) and puts new_whale where `new_whale_probability` (the
probability that none of the candidates is the whale) falls among them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from core.constants import NEW_WHALE, TOP

# Monotone (non-decreasing) on x >= 0, so they reshape a column without reordering its pairs.
TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "log1p": lambda x: np.log1p(np.maximum(x, 0.0)),  # counts: inliers, votes
    "sqrt": lambda x: np.sqrt(np.maximum(x, 0.0)),
    "reciprocal": lambda x: 1.0 / (1.0 + np.maximum(x, 0.0)),  # ranks from 0: 1, 1/2, 1/3, ... (decreasing)
}
FORMAT = "flukeid-match-calibrator-1"  # bump when to_dict's fields change


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Stable for large |z|: exp of a non-positive number only.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _matrix(features: np.ndarray | Sequence[Sequence[float]], columns: int | None = None) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x.reshape(-1, columns or 1) if x.size else x.reshape(0, columns or 0)
    if x.ndim != 2 or (columns is not None and x.shape[1] != columns):
        raise ValueError(f"features must be a pairs x {columns or 'columns'} matrix; got shape {x.shape}")
    if not np.isfinite(x).all():
        # A missing piece of evidence has a meaning (no votes: 0; no embedding: ...) only the caller knows.
        raise ValueError("features hold NaN or infinity: fill missing evidence before calibrating")
    return x


@dataclass
class MatchCalibrator:
    """A fitted (or, without both classes, a constant) map from evidence rows to P(same whale)."""

    feature_names: list[str]
    transforms: list[str]
    means: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    coefficients: list[float] = field(default_factory=list)
    intercept: float = 0.0
    fitted: bool = False  # False: predict returns base_rate (one class, or no pairs, to learn from)
    base_rate: float = 0.0  # share of same-whale pairs in the fitting data (0.0 without pairs)
    pairs: int = 0
    regularisation: float = 1.0  # scikit-learn's C

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        same: np.ndarray | Sequence[bool],
        feature_names: Sequence[str] | None = None,
        transforms: Mapping[str, str] | None = None,
        regularisation: float = 1.0,
        weights: np.ndarray | Sequence[float] | None = None,
    ) -> MatchCalibrator:
        """Fit on evidence rows and their truth (True: the candidate is the query's whale).

        `transforms` maps a feature name to a `TRANSFORMS` key (others stay as they are). Columns are
        standardised after the transform; a constant column gets scale 1 (it then contributes nothing).
        `weights`: one per row (scikit-learn's sample weights), for pairs drawn in another mix than the one the
        probabilities are for; the base rate is then the weighted share.
        """
        y = np.asarray(same, dtype=bool).ravel()
        x = _matrix(features, len(feature_names) if feature_names is not None else None)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} evidence rows for {len(y)} truths")
        w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w is not None and (len(w) != len(y) or not np.isfinite(w).all() or (w < 0).any()):
            raise ValueError(f"weights must be {len(y)} finite non-negative numbers")
        names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(x.shape[1])]
        chosen = dict(transforms or {})
        unknown = sorted(set(chosen) - set(names)) + sorted(set(chosen.values()) - set(TRANSFORMS))
        if unknown:
            raise ValueError(f"unknown feature or transform {unknown}; transforms are {sorted(TRANSFORMS)}")
        model = cls(names, [chosen.get(name, "identity") for name in names], regularisation=regularisation)
        model.pairs = len(y)
        if len(y):
            model.base_rate = (
                float(np.average(y, weights=w)) if w is not None and w.sum() > 0 else float(y.mean())
            )
        if len(y) == 0 or y.all() or not y.any():
            return model  # nothing to separate: the base rate is the honest answer
        from sklearn.linear_model import LogisticRegression  # only fitting needs scikit-learn

        z = model._transformed(x)
        means, scales = z.mean(axis=0), z.std(axis=0)
        scales = np.where(scales > 1e-12, scales, 1.0)
        regression = LogisticRegression(C=regularisation, max_iter=1000)
        regression.fit((z - means) / scales, y, sample_weight=w)
        model.means, model.scales = means.tolist(), scales.tolist()
        model.coefficients = regression.coef_.ravel().tolist()
        model.intercept, model.fitted = float(regression.intercept_[0]), True
        return model

    def _transformed(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([TRANSFORMS[name](x[:, i]) for i, name in enumerate(self.transforms)])

    def predict(self, features: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """P(same whale) per evidence row (columns in `feature_names` order)."""
        x = _matrix(features, len(self.feature_names))
        if not self.fitted:
            return np.full(len(x), self.base_rate)
        if not len(x):
            return np.zeros(0)
        z = (self._transformed(x) - np.asarray(self.means)) / np.asarray(self.scales)
        return _sigmoid(z @ np.asarray(self.coefficients) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON numbers and strings: the whole fitted model."""
        return {
            "format": FORMAT,
            "feature_names": list(self.feature_names),
            "transforms": list(self.transforms),
            "means": [float(v) for v in self.means],
            "scales": [float(v) for v in self.scales],
            "coefficients": [float(v) for v in self.coefficients],
            "intercept": float(self.intercept),
            "fitted": bool(self.fitted),
            "base_rate": float(self.base_rate),
            "pairs": int(self.pairs),
            "regularisation": float(self.regularisation),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchCalibrator:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} dict (format {data.get('format')!r})")
        unknown = sorted(set(data["transforms"]) - set(TRANSFORMS))
        if unknown:
            raise ValueError(f"unknown transforms {unknown}")
        return cls(**{item.name: data[item.name] for item in fields(cls)})


def cross_validated_probabilities(
    features: np.ndarray,
    same: np.ndarray | Sequence[bool],
    groups: np.ndarray | Sequence[Any],
    folds: int = 5,
    **fit_options: Any,
) -> np.ndarray:
    """Out-of-fold P(same) per pair: each pair is scored by a calibrator fitted without its query's pairs.

    `groups`: the query of each pair (GroupKFold keeps a query's pairs together). With fewer than two queries
    nothing can be held out, and the pairs get the in-sample prediction. `fit_options` go to `MatchCalibrator.fit`
    (`weights`, one per pair, are split with the pairs).
    """
    from sklearn.model_selection import GroupKFold

    x = _matrix(features)
    y = np.asarray(same, dtype=bool).ravel()
    groups = np.asarray(groups).ravel()
    if not (len(x) == len(y) == len(groups)):
        raise ValueError(f"{len(x)} rows, {len(y)} truths and {len(groups)} groups")
    weights = fit_options.pop("weights", None)
    weights = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    splits = min(folds, len(np.unique(groups)))
    if splits < 2:
        return MatchCalibrator.fit(x, y, weights=weights, **fit_options).predict(x)
    probabilities = np.zeros(len(y))
    for train, held_out in GroupKFold(n_splits=splits).split(x, y, groups):
        part = None if weights is None else weights[train]
        fitted = MatchCalibrator.fit(x[train], y[train], weights=part, **fit_options)
        probabilities[held_out] = fitted.predict(x[held_out])
    return probabilities


def reliability_table(
    prob: np.ndarray | Sequence[float], same: np.ndarray | Sequence[bool], bins: int = 10
) -> pd.DataFrame:
    """Per equal-width probability bin: bounds, mean predicted probability, observed share of same-whale pairs
    and pair count. Every bin has a row; an empty one has pairs 0 and NaN means (drop them to plot)."""
    p = np.clip(np.asarray(prob, dtype=np.float64).ravel(), 0.0, 1.0)
    y = np.asarray(same, dtype=np.float64).ravel()
    if len(p) != len(y):
        raise ValueError(f"{len(p)} probabilities for {len(y)} truths")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)  # p = 1.0 belongs to the last bin
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=bins) / counts
        share = np.bincount(which, weights=y, minlength=bins) / counts
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "mean_probability": mean_p,
            "observed_share": share,
            "pairs": counts,
        }
    )


def expected_calibration_error(
    prob: np.ndarray | Sequence[float], same: np.ndarray | Sequence[bool], bins: int = 10
) -> float:
    """Sum over equal-width bins of (bin's share of pairs) x |mean probability - observed share|; 0.0 without
    pairs."""
    table = reliability_table(prob, same, bins)
    filled = table[table.pairs > 0]
    if filled.empty:
        return 0.0
    gap = (filled.mean_probability - filled.observed_share).abs()
    return float((gap * filled.pairs).sum() / filled.pairs.sum())


def new_whale_probability(candidate_probs: Sequence[float], rule: str = "product") -> float:
    """Probability that none of the candidates is the query's whale.

    - `product` (default): prod(1 - p), as if the pairs were independent. It never exceeds 1 - max(p), so
      new_whale never outranks a candidate the evidence calls near-certain, and it stays in [0, 1] by itself.
    - `sum`: 1 - sum(p), clipped to [0, 1]. A query is at most one whale, so the candidates' events exclude each
      other and calibrated p's sum, on average, to the chance that some candidate is right; sharper than
      `product` when several candidates are likely (it is the lower bound, `product` the upper).
    Only the position of new_whale in the row depends on the rule; choose it on validation MAP@5.
    """
    p = np.clip(np.asarray(candidate_probs, dtype=np.float64).ravel(), 0.0, 1.0)
    if rule == "product":
        return float(np.prod(1.0 - p))
    if rule == "sum":
        return float(np.clip(1.0 - p.sum(), 0.0, 1.0))
    raise ValueError(f"rule must be 'product' or 'sum'; got {rule!r}")


def rank_with_new_whale(
    candidates: Sequence[tuple[str, float]],
    new_whale_probability: float,
    fill: Sequence[str],
    top: int = TOP,
) -> list[str]:
    """The submission row: candidates by probability (ties keep their order; a repeated label counts at its
    highest probability), new_whale in front of the first candidate less likely than it, then `fill` labels
    (e.g. the most frequent individuals) until the row has `top` distinct labels."""
    best: dict[str, float] = {}
    for label, probability in candidates:
        if label != NEW_WHALE and float(probability) > best.get(label, -np.inf):
            best[label] = float(probability)
    ordered = sorted(best, key=lambda label: -best[label])  # stable: ties keep the candidates' order
    at = next((i for i, label in enumerate(ordered) if best[label] < new_whale_probability), len(ordered))
    row = ordered[:at] + [NEW_WHALE] + ordered[at:]
    for label in fill:
        if len(row) >= top:
            break
        if label not in row:
            row.append(label)
    return row[:top]
