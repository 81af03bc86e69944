"""Training: config, run folder, rows, SFT, GRPO, recovery rounds and the stage pipeline."""
