"""Stage train: the embedding network, trained by metric learning on the fluke crops of the training fold, beside
two baselines scored on the same validation fold (`embedding_model`)."""
