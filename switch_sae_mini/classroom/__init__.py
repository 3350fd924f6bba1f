"""The classroom: notebook helpers (setup, FAST), the exercise checks, student versions of the notebooks and the
grader.
"""

from . import checks, notebook

__all__ = ["checks", "notebook"]
