"""Builds plannerl's compiled search core (plannerl/_core.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("plannerl._core", ["plannerl/_core.c"], extra_compile_args=["-O2", "-std=c11"])])
