# Shim for Dataflow's --setup_file (which builds an sdist from this directory);
# all metadata lives in pyproject.toml.
from setuptools import setup

setup()
