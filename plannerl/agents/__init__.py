"""Agents and their evaluation: policies, model and tokenizer, multi-turn rollouts, sharding, plots."""
