"""Identify: every known train photo embedded into a faiss gallery (`gallery_index`); the held-out fold identified
against the train fold to tune the verification weight and the `new_whale` threshold (`validation_report`); and
every test photo identified with those settings, through the same path, into Kaggle's five labels
(`submission`). The one identification path is `identification.identify`."""
