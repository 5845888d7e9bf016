"""The scenario suites, one folder each (conformance, chaos, browser, property, load, bench).

Installed as the ``harness_scenarios`` package so that ``harness run`` finds them outside a
checkout. The folders are not packages: pytest imports each suite's modules from its own folder.
"""
