"""The values between assets: each TypedDict of `core.artifacts` is a Dagster type that accepts a well-formed
value and refuses one missing a required part, the assets are annotated with them, and an asset whose input is
annotated with one still materializes (and fails on a malformed input)."""

import typing

import numpy as np
import pandas as pd
import pytest
from dagster import AssetChecksDefinition, AssetsDefinition, asset, check_dagster_type, materialize

from core import artifacts
from core.artifacts import ARTIFACT_TYPES, TABLE_COLUMNS, FlukeDetector
from core.dagster_types import ARTIFACT_DAGSTER_TYPES, part_classes
from pipelines.definitions import all_assets, all_checks, chain_part

SAMPLES = {
    pd.DataFrame: lambda: pd.DataFrame({"image": ["a.jpg"]}),
    np.ndarray: lambda: np.zeros((1, 1, 2, 2), dtype=np.uint8),
    bytes: lambda: b"\x00",
    dict: dict,
    int: lambda: 1,
    float: lambda: 0.5,
    bool: lambda: True,
    str: lambda: "x",
}
DECLARED = sorted(ARTIFACT_DAGSTER_TYPES, key=lambda declared: declared.__name__)


def well_formed(declared: type) -> dict:
    """A value holding every part (optional ones too), each of its declared type."""
    return {part: SAMPLES[cls]() for part, cls in part_classes(declared).items()}


def test_every_typed_dict_of_the_module_is_registered_once_under_its_own_name():
    typed_dicts = [v for v in vars(artifacts).values() if typing.is_typeddict(v)]
    assert set(typed_dicts) == set(ARTIFACT_DAGSTER_TYPES) >= set(ARTIFACT_TYPES.values())
    names = [dagster_type.unique_name for dagster_type in ARTIFACT_DAGSTER_TYPES.values()]
    assert names == [declared.__name__ for declared in ARTIFACT_DAGSTER_TYPES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("declared", DECLARED, ids=lambda declared: declared.__name__)
def test_a_registered_type_accepts_a_well_formed_value(declared):
    # Resolved through Dagster's registry: the python type itself, as an annotation would be.
    assert check_dagster_type(declared, well_formed(declared)).success


@pytest.mark.parametrize("declared", DECLARED, ids=lambda declared: declared.__name__)
def test_a_registered_type_refuses_a_dict_missing_a_required_part(declared):
    for part in declared.__required_keys__:
        value = {k: v for k, v in well_formed(declared).items() if k != part}
        result = check_dagster_type(declared, value)
        assert not result.success and part in result.description


@pytest.mark.parametrize("declared", DECLARED, ids=lambda declared: declared.__name__)
def test_a_registered_type_refuses_a_part_of_the_wrong_type_and_a_non_dict(declared):
    part = sorted(declared.__required_keys__)[0]
    value = {**well_formed(declared), part: object()}
    result = check_dagster_type(declared, value)
    assert not result.success and part in result.description
    assert not check_dagster_type(declared, [well_formed(declared)]).success


def test_a_not_required_part_may_be_missing():
    # `from __future__ import annotations` in core/artifacts.py would make `weights` required on 3.11.
    assert FlukeDetector.__required_keys__ == {"info"} and FlukeDetector.__optional_keys__ == {"weights"}
    assert check_dagster_type(FlukeDetector, {"info": {"trained": False}}).success
    assert check_dagster_type(FlukeDetector, {"info": {}, "weights": b"pt"}).success
    assert not check_dagster_type(FlukeDetector, {"info": {}, "weights": "not bytes"}).success


def _expected(name: str) -> str | object | None:
    """What a value of asset `name` must be typed as: its registered Dagster type, "DataFrame" for a declared
    table, None where core.artifacts declares nothing."""
    if name in ARTIFACT_TYPES:
        return ARTIFACT_DAGSTER_TYPES[ARTIFACT_TYPES[name]]
    return "DataFrame" if name in TABLE_COLUMNS else None


def _mismatches(definition) -> list[str]:
    node, problems = definition.node_def, []
    if not isinstance(definition, AssetChecksDefinition) and "result" in node.outs:
        (key,) = definition.keys
        problems += _typing_problems({key.to_user_string(): node.outs["result"]}, "returns")
    return problems + _typing_problems(dict(node.ins), "reads")


def _typing_problems(puts: dict, verb: str) -> list[str]:
    problems = []
    for name, put in puts.items():
        expected, found = _expected(name), put.dagster_type
        if expected is None:
            continue
        ok = found is expected if not isinstance(expected, str) else found.display_name == expected
        if not ok:
            want = expected if isinstance(expected, str) else f"core.artifacts.{expected.display_name}"
            problems.append(f"{verb} {name} as {found.display_name} ({found.description}), not {want}")
    return problems


def _definition_name(definition) -> str:
    if isinstance(definition, AssetChecksDefinition):
        return ",".join(sorted(key.name for key in definition.check_keys))
    # Sorted: the keys are a set, whose order changes with each process's hash seed (pytest-xdist's workers
    # must collect the same ids).
    return ",".join(sorted(key.to_user_string() for key in definition.keys))


DEFINITIONS = [
    pytest.param(
        definition,
        id=_definition_name(definition),
    )
    for definition in [*all_assets, *all_checks]
    if isinstance(definition, (AssetsDefinition, AssetChecksDefinition))  # not the observable source
]


@pytest.mark.parametrize("definition", DEFINITIONS)
def test_each_asset_and_check_hands_on_and_reads_the_declared_types(definition):
    problems = _mismatches(definition)
    assert not problems, f"{_definition_name(definition)}: " + "; ".join(problems)


def _stand_in(name: str, value: dict):
    @asset(name=name)
    def _value() -> dict:
        return value

    return _value


def _groups() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
            "split": ["train"] * 4,
            "group": [0, 1, 2, 3],
            "representative": [True] * 4,
            "label": ["w1", "w1", "w2", "new_whale"],
        }
    )


def _materialize_training_manifest(duplicate_groups: dict):
    raw_images = {"images": _groups()[["image", "split", "label"]], "rejected": pd.DataFrame()}
    return materialize(
        [
            _stand_in("raw_images", raw_images),
            _stand_in("duplicate_groups", duplicate_groups),
            *chain_part("training_manifest", checks=False),
        ],
        raise_on_error=False,
    )


def test_an_asset_with_typed_dict_inputs_materializes_and_refuses_a_malformed_input():
    empty = pd.DataFrame()
    result = _materialize_training_manifest({"groups": _groups(), "aliases": empty, "test_matches": empty})
    assert result.success
    manifest = result.output_for_node("training_manifest")
    assert list(manifest.columns) == artifacts.TRAINING_MANIFEST_COLUMNS and len(manifest) == 4

    # The input's type check runs: a duplicate_groups without `aliases` stops the step before its body.
    result = _materialize_training_manifest({"groups": _groups(), "test_matches": empty})
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    assert "DuplicateGroups" in failure.message and "aliases" in failure.message


def test_a_union_part_is_not_checked_rather_than_always_refused():
    class WithUnion(typing.TypedDict):
        name: str | None
        count: typing.Optional[int]  # noqa: UP045 - the older spelling of the same union

    assert part_classes(WithUnion) == {"name": None, "count": None}
