"""The standard benchmarks: annotation files, their loaders and the retrieval metrics."""
