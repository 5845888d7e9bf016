"""Examples that ship with the harness (in the wheel as the ``harness_examples`` package, see
setup.py): the example relay the relay suite runs by default, and CI configurations."""
