"""Sub-commands of the ``cardiomm`` command line (see :mod:`cardiomm.cli`)."""
