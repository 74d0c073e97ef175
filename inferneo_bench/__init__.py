"""inferneo-bench: which batching strategy serves my workload best on my GPU, and by how much."""

__version__ = "0.1.0"
