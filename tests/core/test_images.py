"""Decoding photos the one way: upright, 8-bit, in the mode asked for, whatever the file; and every stage that
decodes a photo sees the same upright pixels (an EXIF-rotated photo crops like the same photo saved upright)."""

import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from assets.crop.crops import CropSpec, crop_and_resize, naive_crop_and_resize
from assets.dedup.phash import open_full_grayscale, open_reduced_grayscale
from assets.identify.whole_images import load_whole_image
from core.images import conversions, decode_photo, eight_bit, open_photo, upright_size
from models.keypoints import KeypointSettings, box_image

EXIF_ORIENTATION = 0x0112


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return exif.tobytes()


def _smooth(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth, asymmetric picture (reduced-scale decodes of it stay close to full-scale ones)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [
        127 + 100 * np.sin(2 * np.pi * (a * x + b * y) + c) * (0.3 + 0.7 * x)
        for a, b, c in rng.uniform(0.5, 2.0, size=(channels, 3))
    ]
    pixels = np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)
    return pixels[..., 0] if channels == 1 else pixels


@pytest.fixture
def rotated_pair(tmp_path):
    """An RGB and a grey JPEG stored turned (EXIF orientation 6: shown rotated 90 degrees clockwise), and, for each,
    the same pixels saved upright, losslessly, as PNG."""
    pairs = {}
    for mode, channels in (("RGB", 3), ("L", 1)):
        stored = _smooth(200, 320, channels)
        rotated = tmp_path / f"rotated_{mode}.jpg"
        Image.fromarray(stored).save(rotated, quality=95, exif=_exif(6))
        with Image.open(rotated) as image:
            upright = ImageOps.exif_transpose(image.convert(mode))
        assert upright.size == (200, 320)
        upright.save(tmp_path / f"upright_{mode}.png")
        pairs[mode] = (rotated, tmp_path / f"upright_{mode}.png")
    return pairs


@pytest.mark.parametrize(
    "orientation, turn",
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: a[::-1, ::-1]),
        (6, lambda a: np.rot90(a, -1)),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    stored = _smooth(30, 50)
    path = tmp_path / "photo.png"  # lossless, so the expected pixels are exact
    Image.fromarray(stored).save(path, exif=_exif(orientation))
    decoded = decode_photo(path, "RGB")
    np.testing.assert_array_equal(np.asarray(decoded.image), turn(stored))
    assert decoded.size == decoded.image.size
    with Image.open(path) as image:
        assert ("exif-rotation" in conversions(image)) is (orientation != 1)


def test_a_reduced_decode_of_a_rotated_jpeg_asks_the_decoder_in_stored_pixels(rotated_pair):
    rotated, _ = rotated_pair["RGB"]
    with Image.open(rotated) as image:
        assert image.size == (320, 200) and upright_size(image) == (200, 320)
    decoded = decode_photo(rotated, "RGB", (50, 80))  # a quarter of the upright photo: libjpeg's 1/4 scale
    assert decoded.size == (200, 320) and decoded.image.size == (50, 80)


def test_modes_and_formats_are_converted_to_8_bit_l_or_rgb(tmp_path):
    rgb = _smooth(40, 60)
    cases = {
        "png.jpg": (Image.fromarray(rgb), {"format": "PNG"}, ["png"]),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), {"format": "JPEG", "quality": 95}, ["cmyk"]),
        "palette.jpg": (
            Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE),
            {"format": "PNG"},
            ["png", "palette"],
        ),
        "rgba.png": (Image.fromarray(rgb).convert("RGBA"), {"format": "PNG"}, ["png", "rgba"]),
        "plain.jpg": (Image.fromarray(rgb), {"format": "JPEG", "quality": 95}, []),
    }
    for name, (image, options, expected) in cases.items():
        image.save(tmp_path / name, **options)
        with Image.open(tmp_path / name) as opened:
            assert conversions(opened) == expected, name
        for mode in ("L", "RGB"):
            decoded = open_photo(tmp_path / name, mode)
            assert decoded.mode == mode and decoded.size == (60, 40), name
            # Every conversion keeps the picture: close to the original pixels (CMYK and JPEG lose a little).
            reference = np.asarray(Image.fromarray(rgb).convert(mode), dtype=np.float32)
            assert np.abs(np.asarray(decoded, dtype=np.float32) - reference).mean() < 12, (name, mode)


def test_a_palette_with_transparency_converts_without_a_warning(tmp_path):
    image = Image.fromarray(_smooth(20, 30)).convert("P")
    image.info["transparency"] = 0
    image.save(tmp_path / "t.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_photo(tmp_path / "t.png", "RGB").mode == "RGB"


def test_16_bit_photos_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 16).reshape(16, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I") and conversions(image) == ["png", "16-bit"]
    grey = np.asarray(open_photo(tmp_path / "deep.png", "L"))
    np.testing.assert_array_equal(grey, np.rint(ramp / 257.0).astype(np.uint8))
    assert grey.min() == 0 and grey.max() == 255  # Pillow's own convert("L") would clip all but the darkest
    # A 32-bit integer image that only holds 8-bit values is taken as it is.
    small = Image.fromarray(np.arange(200, dtype=np.int32).reshape(10, 20), mode="I")
    np.testing.assert_array_equal(np.asarray(eight_bit(small)), np.arange(200).reshape(10, 20))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_stage_decodes_a_rotated_photo_as_the_upright_one(rotated_pair, mode):
    rotated, upright = rotated_pair[mode]
    # Crops: a window of the upright photo, at full scale (exactly equal) and at reduced JPEG scale (close).
    window = (20.0, 40.0, 180.0, 260.0)
    for width, height, tolerance in ((160, 220, 0.0), (40, 55, 4.0)):
        crops = [
            crop_and_resize(CropSpec(str(path), window, width, height, grayscale=mode == "L"))
            for path in (rotated, upright)
        ]
        assert crops[0].shape == crops[1].shape == (1 if mode == "L" else 3, height, width)
        assert np.abs(crops[0].astype(float) - crops[1]).mean() <= tolerance
    naive = [naive_crop_and_resize(CropSpec(str(p), window, 64, 64, mode == "L")) for p in (rotated, upright)]
    np.testing.assert_array_equal(naive[0], naive[1])
    if mode != "L":
        return
    # The keypoint stage's box image, the dedup stage's grey pictures, the identify stage's whole photos.
    settings = KeypointSettings(width=150)
    box = (10.0, 30.0, 160.0, 250.0)
    np.testing.assert_array_equal(
        np.asarray(box_image(rotated, box, settings)), np.asarray(box_image(upright, box, settings))
    )
    np.testing.assert_array_equal(
        np.asarray(open_full_grayscale(rotated)), np.asarray(open_full_grayscale(upright))
    )
    assert open_reduced_grayscale(rotated, 50).size == (50, 80)
    np.testing.assert_array_equal(
        load_whole_image(rotated, 320, 200, 1), load_whole_image(upright, 320, 200, 1)
    )
    # Read as stored (ignoring the orientation), the crop would be of other pixels entirely.
    with Image.open(rotated) as image:
        sideways = np.asarray(image.convert("L").resize((200, 320)), dtype=float)
    assert np.abs(sideways - np.asarray(open_photo(upright, "L"), dtype=float)).mean() > 10
