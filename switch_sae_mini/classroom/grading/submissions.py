"""Reading a submission, and finding the instructor notebook it answers."""

from __future__ import annotations

from pathlib import Path

from ..assignments import (METADATA_KEY, NOTEBOOKS_DIR, AssignmentError, load_notebook, nbgrader_meta,
                           source_paths)
from .prepare import GradingError


def read_submission(path: str | Path):
    """The submission as a notebook, or a GradingError saying why it is not one."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise GradingError(f"submission {path} does not exist.")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises JSON, validation and version errors of several types
        raise GradingError(f"{path} is not a Jupyter notebook ({type(exc).__name__}: {str(exc)[:200]}); submit "
                           "the .ipynb file you worked in.") from None


def _grade_ids(nb) -> set[str]:
    return {nbgrader_meta(c).get("grade_id") for c in nb.cells} - {None}


def find_source(nb, path: Path, source: str | Path | None = None) -> tuple[str, object, Path]:
    """(assignment name, instructor notebook, its path): from --source, the notebook's metadata, its grade ids or
    its file name."""
    if source is not None and Path(source).is_file():
        return Path(source).stem, load_notebook(source), Path(source)
    try:
        sources = source_paths(source if source is not None else NOTEBOOKS_DIR)
    except AssignmentError as exc:
        raise GradingError(f"{exc} Pass --source NN_name.py (the instructor notebook).") from None
    name = nb.metadata.get(METADATA_KEY, {}).get("assignment")
    if name is None:  # renamed file without our metadata: match the check cells' grade ids
        ids = _grade_ids(nb)
        matches = [n for n, p in sources.items() if ids & _grade_ids(load_notebook(p))]
        name = matches[0] if len(matches) == 1 else path.stem
    if name not in sources:
        raise GradingError(f"cannot tell which assignment {path.name} is ({name!r} is none of "
                           f"{', '.join(sources)}); pass --source notebooks/NN_name.py.")
    return name, load_notebook(sources[name]), sources[name]
