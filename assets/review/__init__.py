"""Review: the test photos a researcher should look at first, with the evidence to decide them
(`review_queue`, served by `flukeid review`), and every test photo's decided individual for a catalogue
(`decided_identities`). Decisions flow back through the decisions file, which `raw_images` reads."""
