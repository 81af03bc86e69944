"""Cooking tasks as text: recipes, the instance generator, renderer, action parser, rewards, datasets."""
