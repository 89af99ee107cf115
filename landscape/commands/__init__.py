"""Sub-commands of the ``landscape`` CLI, one module each (see :mod:`landscape.cli`)."""
