"""Gymnasium environments over plannerl tasks (`pip install gymnasium`; `.[dev]` includes it).

Importing this package registers the ids, so that

    import gymnasium, plannerl.envs
    env = gymnasium.make("plannerl/Cooking-v0", task="burger")
    env = gymnasium.make("plannerl/Domain-v0", domain="blocks/domain.pddl", problems="blocks/*.pddl")

work with any keyword of `PlanningEnv`. `import plannerl` never imports gymnasium.
"""

from __future__ import annotations

try:
    import gymnasium
except ImportError as exc:  # the optional extra is missing: say what to install
    raise ImportError("plannerl.envs needs gymnasium: pip install gymnasium (or pip install -e '.[dev]')") from exc

from plannerl.envs.planning_env import PlanningEnv

COOKING_ID = "plannerl/Cooking-v0"
DOMAIN_ID = "plannerl/Domain-v0"

for _id, _kwargs in ((COOKING_ID, {"task": "burger"}), (DOMAIN_ID, {})):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="plannerl.envs.planning_env:PlanningEnv", kwargs=_kwargs)

__all__ = ["COOKING_ID", "DOMAIN_ID", "PlanningEnv"]
