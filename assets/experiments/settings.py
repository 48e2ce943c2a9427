"""The experiments file and what one partition of `experiment_run` trains and scores with.

`configs/experiments.yaml` (or the file `FLUKEID_EXPERIMENTS` names) holds named experiments, each a question and
a few variants; a variant overrides the current recipe's training config (`models.training.TrainingConfig`, the
`embedding_model` Config) and its identification settings (`assets.identify.report.ReportSettings`, the
`validation_report` Config). One partition is a variant and a seed: `partition_settings` resolves it to the
recipe (the defaults with the active profile's sections), then the file's shared settings (`training`,
`identification`) and time budget, then the variant's overrides, then the seed. Its `version` is what `experiment_variants` observes for the partition, so
editing one variant changes the version of its partitions only.

Parsing refuses what would silently mean something else: an unknown key, a name that is not a plain identifier,
an experiment without its `recipe` baseline, a recipe with overrides, a seed among the overrides. Declared ranges
(positive epochs, shares in [0, 1], ...) are checked against the asset Configs by `pipelines/definitions.py`.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from assets.identify.report import ReportSettings
from core.digests import stable_digest
from core.profiles import asset_config
from models.training import TrainingConfig

EXPERIMENTS_ENV = "FLUKEID_EXPERIMENTS"
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "configs" / "experiments.yaml"
BASELINE = "recipe"  # the variant without overrides every experiment holds, and its verdict's reference
SEPARATOR = "."  # variant key: <experiment>.<variant>
NAME = re.compile(r"^[a-z0-9_]+$")
# What a verdict may compare (higher is better for each).
METRICS = (
    "map5",
    "map5_known",
    "map5_new_whale",
    "map5_embedding_only",
    "map5_threshold_path",
    "recall@1",
    "recall@5",
    "recall@20",
    "hit_rank_1",
)
SECTIONS = {"training": TrainingConfig, "identification": ReportSettings}
TOP_KEYS = {"seeds", "budget_minutes", "metrics", "training", "identification", "experiments"}
EXPERIMENT_KEYS = {"question", "note", "variants"}


class ExperimentsError(ValueError):
    """The experiments file says something that cannot be run as written."""


@dataclass(frozen=True)
class Variant:
    experiment: str
    name: str
    training: dict  # overrides of TrainingConfig
    identification: dict  # overrides of ReportSettings

    @property
    def key(self) -> str:
        return f"{self.experiment}{SEPARATOR}{self.name}"

    @property
    def overrides(self) -> dict:
        return {section: dict(getattr(self, section)) for section in SECTIONS if getattr(self, section)}


@dataclass(frozen=True)
class Experiment:
    name: str
    question: str
    note: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Experiments:
    path: str
    seeds: tuple[str, ...]
    budget_minutes: float
    metrics: tuple[str, ...]  # a verdict on each, in this order
    training: dict  # settings every training shares, over the profile's embedding_model section
    identification: dict  # settings every scoring shares, over the profile's validation_report section
    experiments: tuple[Experiment, ...]

    def variant_keys(self) -> list[str]:
        return [variant.key for experiment in self.experiments for variant in experiment.variants]

    def variant(self, key: str) -> Variant:
        for experiment in self.experiments:
            for variant in experiment.variants:
                if variant.key == key:
                    return variant
        raise KeyError(f"no variant {key!r} in {self.path}; it has {self.variant_keys()}")

    def experiment(self, name: str) -> Experiment:
        for experiment in self.experiments:
            if experiment.name == name:
                return experiment
        raise KeyError(f"no experiment {name!r} in {self.path}")


def experiments_path() -> Path:
    """`FLUKEID_EXPERIMENTS` when set, else configs/experiments.yaml."""
    return Path(os.environ.get(EXPERIMENTS_ENV) or DEFAULT_FILE).expanduser().resolve()


def load_experiments(path: str | Path | None = None) -> Experiments:
    path = Path(path).expanduser().resolve() if path else experiments_path()
    if not path.exists():
        raise FileNotFoundError(f"no experiments file {path} (set {EXPERIMENTS_ENV} or restore it)")
    with open(path) as handle:
        return parse_experiments(yaml.safe_load(handle) or {}, str(path))


def _unknown(found: set, allowed: set, where: str) -> None:
    unknown = sorted(found - allowed)
    if unknown:
        raise ExperimentsError(f"{where}: unknown keys {unknown} (allowed: {sorted(allowed)})")


def _name(text: object, where: str) -> str:
    if not isinstance(text, str) or not NAME.match(text):
        raise ExperimentsError(f"{where}: {text!r} is not a name of lowercase letters, digits and _")
    return text


def _overrides(section: str, values: object, where: str) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ExperimentsError(f"{where}.{section} must be a mapping of settings, got {values!r}")
    _unknown(set(values), {f.name for f in fields(SECTIONS[section])}, f"{where}.{section}")
    if section == "training" and "seed" in values:
        raise ExperimentsError(
            f"{where}.training: the seed is a partition of its own (`seeds`), not an override"
        )
    return dict(values)


def _variant(experiment: str, name: str, raw: object, path: str) -> Variant:
    where = f"{path}: {experiment}.{name}"
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ExperimentsError(f"{where} must be a mapping with training and/or identification")
    _unknown(set(raw), set(SECTIONS), where)
    return Variant(
        experiment,
        _name(name, where),
        _overrides("training", raw.get("training"), where),
        _overrides("identification", raw.get("identification"), where),
    )


def _experiment(name: str, raw: object, path: str) -> Experiment:
    where = f"{path}: {name}"
    if not isinstance(raw, dict):
        raise ExperimentsError(f"{where} must be a mapping with question and variants")
    _unknown(set(raw), EXPERIMENT_KEYS, where)
    question = str(raw.get("question") or "").strip()
    if not question:
        raise ExperimentsError(f"{where}: no question")
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict) or BASELINE not in variants:
        raise ExperimentsError(f"{where}: the variants must include `{BASELINE}` (the current recipe)")
    parsed = tuple(_variant(name, key, value, path) for key, value in variants.items())
    if parsed[[v.name for v in parsed].index(BASELINE)].overrides:
        raise ExperimentsError(f"{where}.{BASELINE}: the recipe takes no overrides")
    if len(parsed) < 2:
        raise ExperimentsError(f"{where}: a variant besides `{BASELINE}` is needed to compare")
    return Experiment(_name(name, where), question, str(raw.get("note") or "").strip(), parsed)


def parse_experiments(raw: dict, path: str = "<experiments>") -> Experiments:
    if not isinstance(raw, dict):
        raise ExperimentsError(f"{path}: expected a mapping at the top")
    _unknown(set(raw), TOP_KEYS, path)
    seeds = raw.get("seeds", [0, 1, 2])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ExperimentsError(f"{path}: seeds must be a list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ExperimentsError(f"{path}: seeds repeat: {seeds}")
    budget = raw.get("budget_minutes", 5)
    if not isinstance(budget, (int, float)) or isinstance(budget, bool) or budget < 0:
        raise ExperimentsError(f"{path}: budget_minutes must be a number >= 0 (0: no budget), got {budget!r}")
    metrics = raw.get("metrics", ["map5"])
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics or any(m not in METRICS for m in metrics):
        raise ExperimentsError(f"{path}: metrics must be a list of names from {METRICS}, got {metrics!r}")
    if len(set(metrics)) != len(metrics):
        raise ExperimentsError(f"{path}: metrics repeat: {metrics}")
    experiments = raw.get("experiments") or {}
    if not isinstance(experiments, dict) or not experiments:
        raise ExperimentsError(f"{path}: no experiments")
    return Experiments(
        path=path,
        seeds=tuple(str(s) for s in seeds),
        budget_minutes=float(budget),
        metrics=tuple(metrics),
        training=_overrides("training", raw.get("training"), path),
        identification=_overrides("identification", raw.get("identification"), path),
        experiments=tuple(_experiment(name, value, path) for name, value in experiments.items()),
    )


@dataclass(frozen=True)
class PartitionSettings:
    """What one partition trains and scores with, resolved."""

    variant: Variant
    seed: int
    training: TrainingConfig
    report: ReportSettings

    @property
    def version(self) -> str:
        """The partition's observed data version: everything that decides its result."""
        return stable_digest(self.variant.key, self.seed, self.training.to_dict(), asdict(self.report))

    @property
    def training_version(self) -> str:
        """Partitions with the same training (and so one checkpoint) share this."""
        return stable_digest(self.training.to_dict())


def partition_settings(
    experiments: Experiments,
    variant_key: str,
    seed: str | int,
    training_profile: dict | None = None,
    report_profile: dict | None = None,
) -> PartitionSettings:
    """The recipe (defaults, then the profile's `embedding_model` / `validation_report` sections, unless given),
    then the file's budget and shared settings, then the variant's overrides, then the seed."""
    variant = experiments.variant(variant_key)
    training_profile = asset_config("embedding_model") if training_profile is None else training_profile
    report_profile = asset_config("validation_report") if report_profile is None else report_profile
    training = {
        **training_profile,
        "max_minutes": experiments.budget_minutes,
        **experiments.training,
        **variant.training,
        "seed": int(seed),
    }
    report = {**report_profile, **experiments.identification, **variant.identification}
    if "verification_weights" in report:
        report["verification_weights"] = tuple(report["verification_weights"])
    return PartitionSettings(variant, int(seed), TrainingConfig.from_dict(training), ReportSettings(**report))
