"""Stage keypoints: RootSIFT keypoints of every photo's fluke box, resized to a width chosen by measurement, cached
per photo by content and stored as flat arrays with a per-photo index (`fluke_keypoints`) for verification and
descriptor voting."""
