"""The compiled modules; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

# Without a C compiler the install still succeeds: gateway/rules/normalise.py runs the regular
# expressions that _fold.c replaces, and the Python definitions beside each use of _wire run.
setup(ext_modules=[
    Extension("gateway.rules._fold", ["gateway/rules/_fold.c"], optional=True),
    Extension("gateway._wire", ["gateway/_wire.c"], optional=True),
])
