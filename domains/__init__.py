"""The shipped PDDL domains, problems, natural-language templates and recipes, installed as
package data `plannerl.domains` so commands find them in a wheel install as in a checkout."""

from pathlib import Path

DOMAINS_DIR = Path(__file__).resolve().parent
RECIPES_DIR = DOMAINS_DIR / "recipes"
