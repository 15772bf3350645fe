"""Training: the step and loop (engine), checkpoints, monitoring."""
