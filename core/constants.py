"""Words of the Kaggle format every stage shares."""

NEW_WHALE = "new_whale"  # the label of a photo whose whale is none of the known individuals
TOP = 5  # labels per submission row, and the depth of MAP@5
