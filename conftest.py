"""Loads the harness pytest plugin (options, fixtures, run-directory capture).

Installed checkouts register it through the ``pytest11`` entry point under the same name, so
this line is a no-op there and makes a bare checkout work too.
"""

pytest_plugins = ["harness.pytest_plugin"]
