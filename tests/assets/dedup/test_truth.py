"""dedup truth: pairwise precision/recall against the generator's duplicates.csv, and no score without one."""

import pandas as pd

from assets.dedup.truth import meets_truth, precision_recall, truth_scores
from tests.assets.dedup.photos import run_dedup


def test_real_photo_groups_score_perfectly(real_photo_folder, real_photo_result):
    groups = real_photo_result[1]["groups"]
    scores = precision_recall(groups, pd.read_csv(real_photo_folder / "duplicates.csv"))
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    assert truth_scores(groups, real_photo_folder) == scores and meets_truth(scores)


def test_no_truth_file_no_scores(real_photo_result, tmp_path):
    assert truth_scores(real_photo_result[1]["groups"], tmp_path) is None


def test_precision_and_recall_on_generated_set(tiny_dataset):
    images, value, details = run_dedup(tiny_dataset)
    scores = precision_recall(value["groups"], pd.read_csv(tiny_dataset / "duplicates.csv"))
    assert scores["true_pairs"] >= 3
    assert scores["precision"] >= 0.98
    assert scores["recall"] >= 0.95
    # Look-alike photos (candidates by hash) were there to be rejected, and were.
    assert (~details["pairs"]["verified"]).sum() > scores["true_pairs"]
    truth_aliases = pd.read_csv(tiny_dataset / "aliases.csv")
    found = set(zip(value["aliases"]["label"], value["aliases"]["canonical"]))
    assert found <= set(zip(truth_aliases["Id"], truth_aliases["alias_of"])) | set(
        zip(truth_aliases["alias_of"], truth_aliases["Id"])
    )
