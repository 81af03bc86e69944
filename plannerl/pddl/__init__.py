"""PDDL text to grounded STRIPS tasks: the reader, grounding, plan files and the unified-planning bridge."""
