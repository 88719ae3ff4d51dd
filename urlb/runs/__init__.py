"""The run plumbing: configuration checks, run directories and their lock and record,
snapshots (atomic save, validated load, search), checkpoints, the per-seed run state, and
the entry from a command line (:mod:`urlb.runs.launch`) to the training loop."""
