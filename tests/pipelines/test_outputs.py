import json

from pipelines.outputs import describe_outputs


def test_outputs_name_the_submission_and_validation_figures(tmp_path):
    assert "not materialized yet" in describe_outputs(str(tmp_path))
    (tmp_path / "submission.csv").write_text("Image,Id\n")
    (tmp_path / "validation_report").mkdir()
    summary = {"map5": 0.91234, "threshold": 0.5, "baselines": {"new_whale_frequent": 0.3, "pixel_nn": 0.4}}
    (tmp_path / "validation_report" / "summary.json").write_text(json.dumps(summary))
    text = describe_outputs(str(tmp_path))
    assert f"submission: {tmp_path / 'submission.csv'}" in text
    assert "validation MAP@5: 0.9123" in text and "pixel nearest neighbours 0.4000" in text


def test_outputs_name_the_calibrated_decision_and_the_match_table(tmp_path):
    import json

    (tmp_path / "validation_report").mkdir()
    summary = {"map5": 0.95, "threshold": 3.2, "baselines": {}, "decision": {"ece": 0.012}}
    (tmp_path / "validation_report" / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "matches.csv").write_text("image,rank,label,probability\n")
    text = describe_outputs(str(tmp_path))
    assert "validation MAP@5: 0.9500 (calibrated P(same whale), ECE 0.012)" in text
    assert str(tmp_path / "matches.csv") in text
    assert "weighted to the test set's mix" not in text  # a report from before the weighting


def test_outputs_give_the_validation_figure_weighted_to_the_test_mix(tmp_path):
    (tmp_path / "validation_report").mkdir()
    mix = {"map5": 0.8123, "map5_known": 0.7, "new_whale_share_target": 0.389}
    summary = {"map5": 0.66, "threshold": 3.2, "baselines": {}, "decision": {"ece": 0.01}, "test_mix": mix}
    (tmp_path / "validation_report" / "summary.json").write_text(json.dumps(summary))
    text = describe_outputs(str(tmp_path))
    assert "validation MAP@5 weighted to the test set's mix: 0.8123" in text and "new_whale 39%" in text
