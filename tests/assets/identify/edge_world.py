"""Edge data sets for the identify stage: the hand-made world (`world.make_world`) with every individual but a
few filed as `new_whale` — one known individual, or none at all."""

from pathlib import Path

import pandas as pd

from assets.identify.gallery import build_gallery, gallery_photos
from core.constants import NEW_WHALE
from tests.assets.identify.world import flat_embed, make_world


def edge_world(root: Path, known: set[str]) -> dict:
    """`make_world`, with the labels outside `known` filed as new_whale (folds unchanged: a held-out photo of a
    relabelled whale becomes a held-out new_whale photo), and dedup's answer that test0 duplicates w0_0."""
    world = make_world(root)

    def relabel(label):
        return label if not isinstance(label, str) or label in known else NEW_WHALE

    images = world["raw_images"]["images"]
    world["raw_images"] = {**world["raw_images"], "images": images.assign(label=images["label"].map(relabel))}
    manifest = world["training_manifest"]
    manifest = manifest.assign(label=manifest["label"].map(relabel))
    world["training_manifest"] = manifest.assign(
        individual_photos=manifest["label"].map(manifest["label"].value_counts())
    )
    photos, _ = gallery_photos(world["training_manifest"], world["fluke_tensors"]["index"])
    if len(photos):
        world["gallery_index"], _ = build_gallery(flat_embed, world["fluke_tensors"]["tensors"], photos)
        world["gallery_index"]["info"]["flip"] = False
    world["duplicate_groups"] = {
        "groups": pd.DataFrame({"image": ["w0_0.jpg"], "group": [0]}),
        "aliases": pd.DataFrame({"label": pd.Series(dtype=object), "canonical": pd.Series(dtype=object)}),
        "test_matches": pd.DataFrame(
            {"image": ["test0.jpg"], "train_image": ["w0_0.jpg"], "label": [relabel("w_0")], "distance": [1]}
        ),
    }
    return world
