"""Training: config, run folder, rows, SFT, GRPO, recovery rounds and the stage pipeline.

Read in data-flow order: `config` (defaults.toml, checks) -> `rows` (the row builder) ->
`run` (the run folder) -> `models` -> `sft` -> `grpo` -> `recovery` -> `evaluation` ->
`pipeline` (`train`, the stage sequence).
"""
