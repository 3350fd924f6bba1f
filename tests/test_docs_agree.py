"""The run times in the README's notebook table and in docs/teaching.md's course outline are the same
measurement (scripts/time_notebooks.py), so they must say the same thing for every notebook."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_times() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| (\d\d) \| \[\w+\]\([^)]*\) \|[^|]*\| ([\d.]+) min \| ([\d.]+) min \|",
                      (ROOT / "README.md").read_text(), re.M)
    return {number: (fast, default) for number, fast, default in rows}


def _teaching_times() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| (\d\d) \w+ \|.*\| ([\d.]+) / ([\d.]+) min \|", (ROOT / "docs" / "teaching.md").read_text(),
                      re.M)
    return {number: (fast, default) for number, fast, default in rows}


def test_readme_and_teaching_guide_give_the_same_run_times():
    readme, teaching = _readme_times(), _teaching_times()
    assert len(readme) == 8 and set(teaching) == set(readme), (sorted(readme), sorted(teaching))
    assert readme == teaching
