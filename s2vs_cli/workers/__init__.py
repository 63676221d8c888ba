"""Worker processes: the pool that runs a streaming job over many tasks (pool) and the decoding done in them
(decoding: imports numpy and PyAV only, never torch)."""
