"""plannerl: optimal PDDL plans as training data for LLM planning agents.

Data flows one way: PDDL text (`pddl`) -> compiled task (`task`) -> search and oracle
(`search`, `oracle`) -> renderer -> datasets -> trainer -> evaluator. Importing this package
imports none of the heavy libraries.
"""

__version__ = "0.1.0"
