"""The box contact sheet: a grid of four photos per row, one tile each."""

from assets.detect import boxes as fb
from assets.detect.sheets import box_contact_sheet


def test_box_contact_sheet_tiles_the_photos(manifest, tiny_dataset):
    boxes = fb.whole_image_boxes(manifest, "x")
    sheet = box_contact_sheet(manifest, boxes, tiny_dataset, photos=6, tile=100)
    assert sheet.size == (400, 200) and sheet.mode == "RGB"
