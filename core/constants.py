"""Words of the Kaggle format every stage shares."""

NEW_WHALE = "new_whale"  # the label of a photo whose whale is none of the known individuals
TOP = 5  # labels per submission row, and the depth of MAP@5
# The Dagster group of the experiment sweep (assets/experiments/): left out of the chain's job, `flukeid update`
# and the `make demo` / CI selections, which run the chain only.
EXPERIMENTS_GROUP = "experiments"
