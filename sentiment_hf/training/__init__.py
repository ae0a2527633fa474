"""Training: the Trainer workflow, checkpoints, the run manifest, tracking, profiling, seeded
sampling."""
