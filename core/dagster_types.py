"""The artifact TypedDicts of `core.artifacts` as Dagster types, registered once at import.

Dagster checks a value against its annotation with `isinstance`, which a TypedDict refuses (it raises). Each
TypedDict is therefore mapped to a Dagster type whose check accepts a dict holding every required part (a
`NotRequired` part may be absent), each part present being of its declared type (a nested TypedDict counts as
a dict). A stage's `assets.py` imports this module before any asset names one of the types.
"""

import types
import typing

from dagster import DagsterType, TypeCheck, make_python_type_usable_as_dagster_type

from core import artifacts
from core.artifacts import (
    DuplicateGroups,
    EmbeddingModel,
    ExperimentComparison,
    ExperimentRun,
    FlukeDetector,
    FlukeKeypoints,
    FlukeOutlines,
    FlukeTensors,
    GalleryIndex,
    RawImages,
    ReviewQueue,
    ValidationReport,
)

__all__ = [
    "DuplicateGroups",
    "EmbeddingModel",
    "ExperimentComparison",
    "ExperimentRun",
    "FlukeDetector",
    "FlukeKeypoints",
    "FlukeOutlines",
    "FlukeTensors",
    "GalleryIndex",
    "RawImages",
    "ReviewQueue",
    "ValidationReport",
    "typed_dict_dagster_type",
]


def part_classes(declared: type) -> dict[str, type | None]:
    """Each part of `declared` and the class its value must be an instance of (None: not checked)."""
    classes: dict[str, type | None] = {}
    for part, hint in typing.get_type_hints(declared).items():  # NotRequired[...] is unwrapped here
        if typing.is_typeddict(hint):
            classes[part] = dict
        elif isinstance(hint, type):
            classes[part] = hint
        else:
            origin = typing.get_origin(hint)
            # A union (`str | None`) names no one class to check against: unchecked, not always refused.
            union = origin is typing.Union or origin is types.UnionType
            classes[part] = origin if isinstance(origin, type) and not union else None
    return classes


def describe_parts(declared: type) -> str:
    classes = part_classes(declared)
    return ", ".join(
        f"{part} ({cls.__name__ if cls else 'any'}{'' if part in declared.__required_keys__ else ', optional'})"
        for part, cls in classes.items()
    )


def typed_dict_dagster_type(declared: type) -> DagsterType:
    """A Dagster type for a TypedDict value: a dict holding each required part, every part of its declared type."""
    classes = part_classes(declared)
    required = declared.__required_keys__

    def holds_parts(_context, value) -> TypeCheck:
        if not isinstance(value, dict):
            return TypeCheck(success=False, description=f"expected a dict, got {type(value).__name__}")
        missing = sorted(required - set(value))
        wrong = sorted(
            f"{part} is {type(value[part]).__name__}, not {cls.__name__}"
            for part, cls in classes.items()
            if part in value and cls is not None and not isinstance(value[part], cls)
        )
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + wrong
        return TypeCheck(success=not problems, description="; ".join(problems) or None)

    return DagsterType(
        type_check_fn=holds_parts,
        name=declared.__name__,
        description=f"core.artifacts.{declared.__name__}: {describe_parts(declared)}",
        typing_type=declared,
    )


# Every TypedDict of core.artifacts, once (a second registration of a type raises, so this module is the only
# place that registers them; names are the TypedDicts' names, unique across the Definitions).
ARTIFACT_DAGSTER_TYPES: dict[type, DagsterType] = {
    declared: typed_dict_dagster_type(declared)
    for declared in vars(artifacts).values()
    if typing.is_typeddict(declared) and declared.__module__ == artifacts.__name__
}
for _declared, _dagster_type in ARTIFACT_DAGSTER_TYPES.items():
    make_python_type_usable_as_dagster_type(_declared, _dagster_type)
