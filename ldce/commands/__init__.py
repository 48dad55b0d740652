"""The ``ldce`` command's front: the overview of its tools, one-line user errors, quiet frameworks, and
``ldce explain``'s translation into an ``ldce predict`` run."""
