"""Package layout that pyproject.toml cannot say on its own.

The scenario suites (``scenarios/``), the audio fixtures (``fixtures/``) and the examples
(``examples/``: the relay suite's default system under test) live at the top of the checkout,
where ``make test`` and ``harness run`` use them, and ship in the wheel as the
``harness_scenarios``, ``harness_fixtures`` and ``harness_examples`` packages, so an installed
harness has them too.
Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["harness", "harness.*", "reference_server", "reference_server.*"])
    + ["harness_scenarios", "harness_fixtures", "harness_examples"],
    package_dir={"harness_scenarios": "scenarios", "harness_fixtures": "fixtures", "harness_examples": "examples"},
)
