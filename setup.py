"""The one compiled module; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# Without a C compiler the install still succeeds and gateway/rules/normalise.py runs the
# regular expressions that _fold.c replaces.
setup(ext_modules=[Extension("gateway.rules._fold", ["gateway/rules/_fold.c"], optional=True)])
