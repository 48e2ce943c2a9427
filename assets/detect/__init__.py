"""Stage detect: a YOLO fluke detector trained on the hand-annotated photos (`fluke_detector`), then one fluke box
per accepted photo, the whole photo (flagged) where nothing confident is found (`fluke_boxes`)."""
