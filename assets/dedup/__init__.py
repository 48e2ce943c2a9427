"""Stage 2, dedup: a perceptual hash of every accepted photo (`image_hashes`), then groups of exact and
near-duplicate photos, the label aliases they reveal, and the test photos that duplicate train photos
(`duplicate_groups`)."""
