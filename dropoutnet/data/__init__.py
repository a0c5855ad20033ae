"""The data the pipeline reads: the bizdate's sample partitions, the point-in-time feature
queries, the rows-to-arrays contract between SQL and the model, the synthetic short-video
generator and the public datasets mapped into the raw tables."""
