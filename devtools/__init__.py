"""Development servers and sample data: the `make run` demo and the tests share them.

Not part of the installed package (see pyproject's package list): these run from a
source checkout only.
"""
