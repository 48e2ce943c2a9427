"""A hand-made world of box keypoints for the calibrated path's tests: each "whale" is a random blob pattern,
its photos are perspective-warped, noisy copies of it, and new whales are patterns never seen in the gallery."""

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from core.constants import NEW_WHALE
from models.keypoints import KeypointSettings, grey_keypoints

SETTINGS = KeypointSettings(width=192, max_features=200)


def pattern(rng: np.random.Generator, height: int = 96, width: int = 192) -> np.ndarray:
    field = gaussian_filter(rng.standard_normal((height, width)), 2.5)
    return ((field > 0) * 200 + 30).astype(np.uint8)


def photo_of(base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new photo of the same pattern: a small random perspective warp, blur and noise."""
    height, width = base.shape
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners + rng.uniform(-8, 8, size=corners.shape).astype(np.float32)
    warp = cv2.getPerspectiveTransform(corners, moved)
    warped = cv2.warpPerspective(base, warp, (width, height), borderMode=cv2.BORDER_REFLECT)
    noisy = gaussian_filter(warped.astype(np.float32), 0.8) + rng.normal(0, 6, warped.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def keypoint_world(seed: int = 0, whales: int = 8, photos: int = 3, queries_new: int = 4) -> dict:
    """Gallery: `photos` photos of each of `whales` individuals. Queries: one more photo of each known whale,
    and `queries_new` photos of whales the gallery lacks (truth new_whale). Embeddings: a deliberately weak
    stand-in (random directions, nudged towards the whale's own), so the keypoints have to do the work."""
    rng = np.random.default_rng(seed)
    bases = [pattern(rng) for _ in range(whales + queries_new)]
    direction = rng.standard_normal((whales + queries_new, 16))

    def embedding(whale: int) -> np.ndarray:
        vector = 0.6 * direction[whale] + rng.standard_normal(16)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    gallery_features, gallery_labels, gallery_embeddings = [], [], []
    for whale in range(whales):
        for _ in range(photos):
            gallery_features.append(grey_keypoints(photo_of(bases[whale], rng), SETTINGS))
            gallery_labels.append(f"w_{whale}")
            gallery_embeddings.append(embedding(whale))
    query_features, query_embeddings, truths = [], [], []
    for whale in range(whales + queries_new):
        query_features.append(grey_keypoints(photo_of(bases[whale], rng), SETTINGS))
        query_embeddings.append(embedding(whale))
        truths.append(f"w_{whale}" if whale < whales else NEW_WHALE)
    return {
        "gallery_features": gallery_features,
        "gallery_labels": gallery_labels,
        "gallery_embeddings": np.stack(gallery_embeddings),
        "query_features": query_features,
        "query_embeddings": np.stack(query_embeddings),
        "truths": truths,
    }
