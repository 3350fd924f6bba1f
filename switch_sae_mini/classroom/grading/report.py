"""What grading produces for one submission: items (visible and hidden part of each exercise), flags, and how the
kernel was sandboxed; as a table, as JSON, and as feedback a student may read (messages only: no hidden inputs,
no hidden code, no executed notebook)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Item:
    exercise: str          # the solution's grade_id, e.g. "route"
    check_id: str          # the check cell's grade_id, e.g. "check_route"
    part: str              # "visible" | "hidden"
    points: float
    earned: float = 0.0
    status: str = "not run"  # passed | failed | timeout | not run
    message: str = ""        # the teaching message of the first failing case, or why it did not run


@dataclass
class Flag:
    exercise: str          # "" for the whole notebook
    kind: str              # package-use | identical-to-reference | check-cell-edited | check-cell-deleted | tampering
    detail: str
    scored_zero: bool = False


@dataclass
class GradeReport:
    assignment: str
    submission: str        # path relative to the folder graded (or the file name)
    items: list[Item] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    sandbox: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return round(sum(i.earned for i in self.items), 6)

    @property
    def max_total(self) -> float:
        return round(sum(i.points for i in self.items), 6)

    def exercise_points(self) -> dict[str, float]:
        points: dict[str, float] = {}
        for item in self.items:
            points[item.exercise] = round(points.get(item.exercise, 0.0) + item.earned, 6)
        return points

    def to_dict(self) -> dict:
        return {"assignment": self.assignment, "submission": self.submission, "total": self.total,
                "max_total": self.max_total, "items": [asdict(i) for i in self.items],
                "flags": [asdict(f) for f in self.flags], "sandbox": self.sandbox, "seconds": round(self.seconds, 1)}

    def table(self) -> str:
        width = max([len(f"{i.exercise} ({i.part})") for i in self.items] + [len("total")])
        lines = [f"{self.assignment} - {self.submission}", f"{'exercise':<{width}}  points  status"]
        for i in self.items:
            status = i.status + (f": {i.message}" if i.message else "")
            lines.append(f"{f'{i.exercise} ({i.part})':<{width}}  {f'{i.earned:g} / {i.points:g}':>6}  {status}")
        lines.append(f"{'total':<{width}}  {f'{self.total:g} / {self.max_total:g}':>6}")
        for f in self.flags:
            where = f"{f.exercise}: " if f.exercise else ""
            lines.append(f"flag {f.kind}: {where}{f.detail}" + (" (scored 0)" if f.scored_zero else ""))
        if self.sandbox:
            box = self.sandbox
            lines.append(f"sandbox: network {box.get('network')}; user {box.get('user')}; /proc {box.get('proc')}; "
                         f"writable: {', '.join(box.get('writable', [])) or 'unknown'}")
        return "\n".join(lines)

    def feedback(self) -> str:
        """Markdown for the student: points and messages per item; flags by kind only."""
        lines = [f"# {self.assignment}: {self.total:g} / {self.max_total:g}", "",
                 "| exercise | part | points | result |", "|---|---|---|---|"]
        for i in self.items:
            result = i.status + (f": {i.message}" if i.message else "")
            lines.append(f"| {i.exercise} | {i.part} | {i.earned:g} / {i.points:g} | {result.replace('|', '/')} |")
        for f in self.flags:
            if f.kind == "package-use":
                lines += ["", f"- {f.exercise}: uses the package's own implementation ({f.detail}); "
                              + ("scored 0." if f.scored_zero else "reported to the instructor.")]
            elif f.kind in ("check-cell-edited", "check-cell-deleted"):
                lines += ["", f"- {f.exercise}: {f.detail}"]
        lines += ["", "Hidden parts use inputs you have not seen (other sizes, edge cases); their messages say what "
                      "was wrong, not the inputs."]
        return "\n".join(lines) + "\n"
