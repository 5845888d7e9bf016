"""Package layout that pyproject.toml cannot say on its own.

The scenario suites (``scenarios/``) and the audio fixtures (``fixtures/``) live at the top of the
checkout, where ``make test`` and ``harness run`` use them, and ship in the wheel as the
``harness_scenarios`` and ``harness_fixtures`` packages, so an installed harness has them too.
Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["harness", "harness.*", "reference_server", "reference_server.*"])
    + ["harness_scenarios", "harness_fixtures"],
    package_dir={"harness_scenarios": "scenarios", "harness_fixtures": "fixtures"},
)
