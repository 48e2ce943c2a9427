"""The ultralytics wrapper: offline settings, the YOLO dataset folder, and a seconds-long train/evaluate/predict."""

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from models import detector as det


def _photo(path: Path, size: tuple[int, int], box: tuple[int, int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    water = (rng.normal(0, 10, (size[1], size[0], 3)) + [40, 80, 120]).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(water)
    ImageDraw.Draw(image).rectangle(box, fill=(230, 230, 235))
    image.save(path, quality=90)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Ten photos of a pale rectangle on water, with their boxes, in a data-folder layout."""
    root = tmp_path_factory.mktemp("detector") / "data"
    (root / "train").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(10):
        width, height = int(rng.integers(300, 420)), int(rng.integers(200, 280))
        x0, y0 = int(rng.integers(5, width // 2)), int(rng.integers(5, height // 2))
        box = (x0, y0, x0 + int(rng.integers(60, width // 2)), y0 + int(rng.integers(40, height // 2)))
        name = f"p{i}.jpg"
        _photo(root / "train" / name, (width, height), box, i)
        rows.append(
            {
                "image": name,
                "split": "train",
                "path": f"train/{name}",
                "width": width,
                "height": height,
                "x0": box[0],
                "y0": box[1],
                "x1": box[2],
                "y1": box[3],
            }
        )
    return root, pd.DataFrame(rows)


def test_configure_offline_installs_the_font_and_turns_sync_off(tmp_path, monkeypatch):
    settings_dir = det.configure_offline(tmp_path / "ultralytics")
    from ultralytics.utils import SETTINGS

    assert (settings_dir / "Arial.ttf").stat().st_size > 100_000  # DejaVuSans, standing in for Arial
    assert (tmp_path / "ultralytics" / "Ultralytics" / "Arial.ttf").exists()
    assert SETTINGS["sync"] is False and SETTINGS["wandb"] is False and SETTINGS["mlflow"] is False
    import os

    assert os.environ["YOLO_OFFLINE"] == "1"


def test_clean_annotations_clips_boxes_and_drops_unusable_ones():
    manifest = pd.DataFrame(
        {
            "image": ["a.jpg", "b.jpg", "c.jpg"],
            "split": "train",
            "path": ["train/a.jpg", "train/b.jpg", "train/c.jpg"],
            "width": [100, 100, 100],
            "height": [50, 50, 50],
        }
    )
    annotations = pd.DataFrame(
        {
            "Image": ["a.jpg", "b.jpg", "c.jpg", "gone.jpg"],
            "x0": [-5, 10, 20, 0],
            "y0": [0, 10, 10, 0],
            "x1": [120, 10, 40, 10],
            "y1": [60, 20, 30, 10],
        }
    )
    cleaned = det.clean_annotations(annotations, manifest)
    assert list(cleaned["image"]) == ["a.jpg", "c.jpg"]  # b has no width; gone.jpg is not an accepted photo
    first = cleaned.iloc[0]
    assert (first["x0"], first["y0"], first["x1"], first["y1"]) == (0.0, 0.0, 100.0, 50.0)


def test_split_annotations_is_seeded_and_keeps_both_parts():
    boxes = pd.DataFrame({"image": [f"{i}.jpg" for i in range(10)]})
    first = det.split_annotations(boxes, 0.2, seed=3)
    again = det.split_annotations(boxes, 0.2, seed=3)
    assert list(first["part"]) == list(again["part"])
    assert (first["part"] == "val").sum() == 2
    assert set(det.split_annotations(boxes.head(2), 0.01, seed=0)["part"]) == {"train", "val"}


def test_build_yolo_dataset_writes_normalised_labels(small_set, tmp_path):
    root, boxes = small_set
    parts = det.split_annotations(boxes, 0.3, seed=0)
    data_yaml = det.build_yolo_dataset(parts, root, tmp_path)
    first = parts.iloc[0]
    label = (data_yaml.parent / "labels" / first["part"] / "p0.txt").read_text().split()
    assert label[0] == "0"
    cx, cy, w, h = map(float, label[1:])
    assert cx == pytest.approx((first["x0"] + first["x1"]) / 2 / first["width"], abs=1e-5)
    assert h == pytest.approx((first["y1"] - first["y0"]) / first["height"], abs=1e-5)
    assert len(list((data_yaml.parent / "images" / "val").iterdir())) == 3
    assert "names" in data_yaml.read_text()


def test_decode_for_detection_reduces_scale_and_reports_it(small_set):
    root, boxes = small_set
    first = boxes.iloc[0]
    array, sx, sy = det.decode_for_detection(root / first["path"], imgsz=64)
    assert array.shape[2] == 3 and max(array.shape[:2]) >= 64
    assert array.shape[1] * sx == pytest.approx(first["width"], abs=sx)
    assert sx >= 2  # the photo is over 256 px wide: libjpeg decoded it at 1/4 scale or less


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert det.box_iou(a, b) == pytest.approx([1.0, 50 / 150, 0.0])


def test_train_evaluate_predict_offline(small_set, tmp_path, monkeypatch):
    """Two epochs from the architecture YAML with every outgoing connection refused: nothing may be fetched."""
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    root, boxes = small_set
    config_dir = tmp_path / "ultralytics"
    data_yaml = det.build_yolo_dataset(det.split_annotations(boxes, 0.2, seed=0), root, tmp_path)
    result = det.train_detector(data_yaml, tmp_path, epochs=2, imgsz=96, batch=4, config_dir=config_dir)
    assert result.weights_path.exists()
    metrics = det.evaluate_detector(result.weights_path, data_yaml, imgsz=96, config_dir=config_dir)
    assert set(metrics) == {"mAP50", "mAP50-95"} and all(0.0 <= v <= 1.0 for v in metrics.values())

    weights = result.weights_path.read_bytes()
    path = det.materialise_weights(weights, tmp_path / "weights")
    assert path.name == f"detector-{det.weights_version(weights)}.pt"
    model = det.load_detector(path, config_dir)
    detections = det.predict_boxes(model, [root / p for p in boxes["path"]], imgsz=96, batch=4)
    assert len(detections) == len(boxes)
    for found, row in zip(detections, boxes.itertuples()):
        if found.found:
            assert 0 <= found.x0 < found.x1 <= row.width + 1e-3
            assert 0 <= found.y0 < found.y1 <= row.height + 1e-3
            assert 0.0 < found.confidence <= 1.0
    assert attempts == []


class _WritesMarkerWhenUnpickled:
    """Unpickling this calls open(marker, "w"): a stand-in for any code a planted weights file could run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_planted_weights_are_refused_before_anything_unpickles_them(tmp_path):
    import hashlib
    import pickle

    marker = tmp_path / "marker"
    planted = tmp_path / "planted.pt"
    planted.write_bytes(pickle.dumps({"model": _WritesMarkerWhenUnpickled(marker)}))
    with pytest.raises(det.UntrustedWeights, match="weights_sha256"):
        det.read_trusted_weights(planted, None)
    with pytest.raises(det.UntrustedWeights, match="not the weights_sha256"):
        det.read_trusted_weights(planted, "0" * 64)
    assert not marker.exists()
    digest = hashlib.sha256(planted.read_bytes()).hexdigest()
    assert (
        det.read_trusted_weights(planted, digest.upper()) == planted.read_bytes()
    )  # vouched for by the user
    assert det.read_trusted_weights(planted, None, trusted={digest}) == planted.read_bytes()  # trained here
    assert not marker.exists()
    pickle.loads(planted.read_bytes())  # the refused file really would have run code
    assert marker.exists()


def test_a_pt_is_refused_as_architecture():
    with pytest.raises(det.UntrustedWeights):
        det.check_architecture("planted.pt")
    det.check_architecture("yolov8n.yaml")


def test_materialised_weights_changed_on_disk_are_rewritten(tmp_path):
    path = det.materialise_weights(b"weights", tmp_path)
    path.write_bytes(b"planted")
    assert det.materialise_weights(b"weights", tmp_path) == path and path.read_bytes() == b"weights"


def test_a_time_budget_cuts_training_short_and_never_adds_epochs(small_set, tmp_path):
    """ultralytics' `time` alone would stretch a short training to fill the budget: it only ever shortens one."""
    root, boxes = small_set
    config_dir = tmp_path / "ultralytics"
    data_yaml = det.build_yolo_dataset(det.split_annotations(boxes, 0.2, seed=0), root, tmp_path / "a")
    common = dict(imgsz=96, batch=4, config_dir=config_dir)
    # 0.01 minutes (0.6 s): 50 epochs cannot fit
    cut = det.train_detector(data_yaml, tmp_path / "a", epochs=50, max_minutes=0.01, **common)
    assert cut.weights_path.exists()
    assert cut.budget["stopped_by_budget"] and 1 <= cut.epochs_run == cut.budget["epochs_completed"] < 50
    assert cut.budget["steps_completed"] >= 1 and cut.budget["max_minutes"] == 0.01
    assert cut.cuda_max_memory_mb is None  # recorded on CUDA only
    # a budget far above what 2 epochs take: exactly 2 (unclamped, `time` would train for the whole 30 s)
    roomy = det.train_detector(data_yaml, tmp_path / "b", epochs=2, max_minutes=0.5, **common)
    assert roomy.epochs_run == 2 and not roomy.budget["stopped_by_budget"]
    assert roomy.budget["steps_completed"] == 2 * 2  # 8 training photos in batches of 4
