"""Training: fitting the model on a bizdate's samples with warm start, the streamed sample
input, training on a cluster of workers, choosing settings on a validation split, and the
SavedModels of the two towers."""
