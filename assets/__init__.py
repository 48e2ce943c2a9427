"""One module per stage of the pipeline, in the order a photo goes through them:

raw_images -> image_hashes -> duplicate_groups -> training_manifest -> fluke_detector -> fluke_boxes
-> fluke_tensors -> embedding_model -> gallery_index -> validation_report -> submission
-> review_queue -> decided_identities (decisions flow back to raw_images through the decisions file)

and, beside the chain, the experiment sweep: experiment_variants -> experiment_run (variant x seed) ->
experiment_comparison (left out of the chain's job, `flukeid update` and `make demo`).
"""

import warnings

from dagster import BetaWarning

# `observable_source_asset` is beta in Dagster 1.13; the warning says nothing a user can act on.
warnings.filterwarnings("ignore", category=BetaWarning)
