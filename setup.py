"""Builds plannerl's compiled search core (plannerl/planning/_core.c); everything else is in pyproject.toml.

Optional: without a C compiler the install still succeeds and the search runs in pure Python
(same plans, much slower); `plannerl plan -v` says which one ran and CI fails without the core."""

from setuptools import Extension, setup

CORE = Extension("plannerl.planning._core", ["plannerl/planning/_core.c"], extra_compile_args=["-O2", "-std=c11"], optional=True)
setup(ext_modules=[CORE])
