"""The experiments file: it asks every question of issue 17, each variant overrides real knobs within their ranges,
and one partition's settings resolve as documented (recipe, budget, variant, seed)."""

import pytest

from assets.experiments.settings import (
    BASELINE,
    DEFAULT_FILE,
    ExperimentsError,
    load_experiments,
    parse_experiments,
    partition_settings,
)
from assets.identify.report import ReportSettings
from models.embedding import FlukeEmbedder
from models.losses import build_losses
from models.training import TrainingConfig
from pipelines.definitions import check_experiments

# The notebook's questions, as issue 17 quotes them.
QUESTIONS = [
    "test if batch norm after relu works better",
    "test if having more fully connected layers help, perhaps dimension is too high",
    "hypertune margin parameter",
    "cross entropy?",
    "test whether compare pairwise rather than all n^2 is sufficient",
    "loss weight (pairwise instead of label)",
    "remove new whale and one image labels",
    "additive data emphasis feedback at end of each epoch",
    "data augmentation + longer train time",
    "log percentage on each of the top 5",
]


@pytest.fixture(scope="module")
def shipped():
    return load_experiments(DEFAULT_FILE)


def test_the_shipped_file_asks_every_question_of_the_issue_with_two_or_three_variants(shipped):
    asked = {experiment.question: experiment for experiment in shipped.experiments}
    assert sorted(asked) == sorted(QUESTIONS)
    for experiment in shipped.experiments:
        names = [variant.name for variant in experiment.variants]
        assert 2 <= len(names) <= 3 and names[0] == BASELINE, experiment.name
    assert len(shipped.seeds) >= 3 and shipped.budget_minutes > 0


def test_every_override_is_a_real_config_field_within_its_declared_range(shipped, monkeypatch):
    monkeypatch.setenv("FLUKEID_PROFILE", "demo")
    check_experiments(shipped)  # builds EmbeddingModelConfig / ValidationReportConfig: names and ranges
    for experiment in shipped.experiments:
        for variant in experiment.variants:
            settings = partition_settings(shipped, variant.key, shipped.seeds[0])
            # The string knobs' values exist too: the network and the losses are built as training builds them.
            model = FlukeEmbedder(settings.training.embedding_spec(1))
            build_losses(settings.training, num_classes=5, embedding_dim=model.embedding_dim)
            for name, value in variant.training.items():
                assert getattr(settings.training, name) == value, (variant.key, name)
            for name, value in variant.identification.items():
                assert getattr(settings.report, name) == value, (variant.key, name)


def test_an_out_of_range_override_is_refused_naming_the_variant(shipped):
    raw = {
        "experiments": {
            "probe": {"question": "q", "variants": {"recipe": {}, "bad": {"training": {"epochs": 0}}}}
        }
    }
    with pytest.raises(ValueError, match=r"(?s)probe\.bad.*epochs"):
        check_experiments(parse_experiments(raw, "probe.yaml"))


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({"recipe": {}, "x": {"training": {"epoch": 3}}}, "unknown keys"),
        ({"recipe": {}, "x": {"training": {"seed": 3}}}, "seed is a partition"),
        ({"recipe": {}, "x": {"scoring": {"k": 3}}}, "unknown keys"),
        ({"x": {"training": {"epochs": 3}}}, "must include `recipe`"),
        ({"recipe": {"training": {"epochs": 3}}, "x": {}}, "recipe takes no overrides"),
        ({"recipe": {}}, "a variant besides"),
        ({"recipe": {}, "Bad-Name": {}}, "not a name"),
    ],
)
def test_a_file_that_would_run_something_else_than_it_says_is_refused(variants, message):
    with pytest.raises(ExperimentsError, match=message):
        parse_experiments({"experiments": {"probe": {"question": "q", "variants": variants}}})


def _probe(wider_dim: int = 16, budget: float = 2):
    return parse_experiments(
        {
            "seeds": [0, 1],
            "budget_minutes": budget,
            "identification": {"exhaustive_sample": 0},
            "experiments": {
                "probe": {
                    "question": "does a wider embedding help?",
                    "variants": {
                        "recipe": {},
                        "wider": {"training": {"embedding_dim": wider_dim}},
                        "longer": {"training": {"max_minutes": 9}, "identification": {"k": 7}},
                    },
                }
            },
        }
    )


def test_a_partition_is_the_recipe_then_budget_then_variant_then_seed():
    probe = _probe()
    profile = {"epochs": 2, "embedding_dim": 8, "seed": 5}
    recipe = partition_settings(probe, "probe.recipe", "1", profile, {"k": 50})
    assert recipe.training == TrainingConfig(epochs=2, embedding_dim=8, seed=1, max_minutes=2)
    assert recipe.report == ReportSettings(k=50, exhaustive_sample=0)
    wider = partition_settings(probe, "probe.wider", "0", profile, {})
    assert (wider.training.embedding_dim, wider.training.epochs, wider.training.seed) == (16, 2, 0)
    longer = partition_settings(probe, "probe.longer", "0", profile, {})
    assert longer.training.max_minutes == 9 and longer.report.k == 7
    # Partitions share a checkpoint when their training is the same, the seed included.
    assert recipe.training_version != wider.training_version
    again = partition_settings(probe, "probe.recipe", "1", profile, {"k": 3})
    assert again.training_version == recipe.training_version and again.version != recipe.version
    assert probe.variant_keys() == ["probe.recipe", "probe.wider", "probe.longer"]


def test_the_files_shared_training_comes_after_the_budget_and_before_the_variant():
    raw = {
        "budget_minutes": 2,
        "training": {"epochs": 40, "max_minutes": 3},
        "experiments": {
            "probe": {
                "question": "q",
                "variants": {"recipe": {}, "longer": {"training": {"epochs": 80, "max_minutes": 6}}},
            }
        },
    }
    probe = parse_experiments(raw)
    profile = {"epochs": 120, "embedding_dim": 8}
    recipe = partition_settings(probe, "probe.recipe", "0", profile, {})
    assert (recipe.training.epochs, recipe.training.max_minutes, recipe.training.embedding_dim) == (40, 3, 8)
    longer = partition_settings(probe, "probe.longer", "0", profile, {})
    assert (longer.training.epochs, longer.training.max_minutes) == (80, 6)
    # A shared setting changes every partition's version; an unknown one is refused.
    shorter = parse_experiments({**raw, "training": {"epochs": 30, "max_minutes": 3}})
    assert partition_settings(shorter, "probe.recipe", "0", profile, {}).version != recipe.version
    with pytest.raises(ExperimentsError, match="unknown keys"):
        parse_experiments({**raw, "training": {"epoch": 30}})
    with pytest.raises(ExperimentsError, match="seed"):
        parse_experiments({**raw, "training": {"seed": 3}})


def test_verdict_metrics_are_a_list_of_known_names():
    raw = {"experiments": {"probe": {"question": "q", "variants": {"recipe": {}, "b": {}}}}}
    assert parse_experiments(raw).metrics == ("map5",)
    two = parse_experiments({**raw, "metrics": ["map5_embedding_only", "map5"]})
    assert two.metrics == ("map5_embedding_only", "map5")
    for bad in (["map6"], [], ["map5", "map5"]):
        with pytest.raises(ExperimentsError, match="metrics"):
            parse_experiments({**raw, "metrics": bad})


def test_editing_one_variant_changes_the_versions_of_its_partitions_only():
    def versions(experiments):
        return {
            (key, seed): partition_settings(experiments, key, seed, {}, {}).version
            for key in experiments.variant_keys()
            for seed in experiments.seeds
        }

    before, after = versions(_probe(16)), versions(_probe(24))
    changed = {partition for partition in before if before[partition] != after[partition]}
    assert changed == {("probe.wider", "0"), ("probe.wider", "1")}
    # The budget is part of every partition's settings.
    assert all(before[p] != v for p, v in versions(_probe(16, budget=3)).items() if p[0] != "probe.longer")
