"""The exercise edition: the solutions notebooks with every exercise solution replaced by a stub.

    python tools/student.py                      # notebooks/solutions/*.ipynb -> notebooks/*.ipynb
    python tools/student.py --src DIR --out DIR
    python tools/student.py --check              # exit 1 if notebooks/*.ipynb differ from a fresh build

In a solutions notebook a solution sits between a line `# BEGIN SOLUTION` and a line `# END SOLUTION` (any
indentation; nbgrader's delimiters). The hints are ordinary comments above it and stay. The exercise edition
replaces each block, at its indentation, with nbgrader's stub and a message that names the exercise:

    # YOUR CODE HERE
    raise NotImplementedError("Exercise my_gram_matrix: replace this line with your code (the hint above ...).")

so the exercise's check (course_lib.checks) reports "not done yet" instead of crashing the notebook. The Colab
badge is pointed at the exercise edition's own path, outputs and execution counts are cleared and metadata
trimmed. Only notebooks are written. Unbalanced markers stop the build with an error naming the notebook and cell.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "YOUR_CODE", "MarkerError", "stub", "solution_blocks", "strip_solutions",
           "student_notebook", "build", "stale", "main", "SOLUTIONS_NOTE", "EXERCISES_NOTE"]

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
YOUR_CODE = "# YOUR CODE HERE"
SOLUTIONS_BADGE, EXERCISES_BADGE = "/notebooks/solutions/", "/notebooks/"  # in the Colab badge's link
SOLUTIONS_NOTE = ("*Solutions edition: every exercise is filled in. Learners start from the exercise edition, "
                  "[`../{name}`](../{name}).*")
EXERCISES_NOTE = ("*Exercise edition: write each function that raises `NotImplementedError`; the check under it "
                  "tells you what is wrong. Stuck? The solutions: [`solutions/{name}`](solutions/{name}).*")
_DEF_LINE = re.compile(r"^(?P<indent>[ \t]*)(async[ \t]+)?def[ \t]+(?P<name>\w+)")
_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION[ \t]*$")
_END_LINE = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
_KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
_KEEP_CELL_METADATA = ("tags",)


class MarkerError(ValueError):
    """A `# BEGIN SOLUTION` without its `# END SOLUTION`, or the other way round."""


def solution_blocks(source: str, *, where: str = "cell") -> list[tuple[int, int, str]]:
    """(begin_line, end_line, indent) of each solution block in `source`, 0-based line numbers of the markers."""
    blocks, begin, indent = [], None, ""
    for number, line in enumerate(source.splitlines()):
        if _BEGIN_LINE.match(line):
            if begin is not None:
                raise MarkerError(f"{where}: line {number + 1} opens a second '{BEGIN}' before line {begin + 1}'s "
                                  f"block is closed: add '{END}' after the first solution")
            begin, indent = number, _BEGIN_LINE.match(line)["indent"]
        elif _END_LINE.match(line):
            if begin is None:
                raise MarkerError(f"{where}: line {number + 1} has '{END}' without a '{BEGIN}' above it")
            blocks.append((begin, number, indent))
            begin = None
    if begin is not None:
        raise MarkerError(f"{where}: the '{BEGIN}' on line {begin + 1} is never closed: add '{END}' after the solution")
    return blocks


def stub(exercise: str) -> str:
    """The line that stands in for a solution: it names the exercise, so the check can say what is left to do."""
    return (f'raise NotImplementedError("Exercise {exercise}: replace this line with your code '
            f'(the hint above shows the way).")')


def _exercise_name(lines: list[str], begin: int, indent: str) -> str:
    """The function that holds the solution block starting at line `begin`: the closest `def` above it."""
    for line in reversed(lines[:begin]):
        match = _DEF_LINE.match(line)
        if match and len(match["indent"]) < len(indent):
            return match["name"]
    return "of this cell"


def strip_solutions(source: str, *, where: str = "cell") -> str:
    """`source` with every solution block (markers included) replaced by the stub at the block's indentation."""
    lines = source.splitlines()
    for begin, end, indent in reversed(solution_blocks(source, where=where)):
        lines[begin:end + 1] = [indent + YOUR_CODE, indent + stub(_exercise_name(lines, begin, indent))]
    return "\n".join(lines) + ("\n" if source.endswith("\n") else "")


def student_notebook(nb: nbformat.NotebookNode, *, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of `nb` with solutions stubbed, the Colab badge pointed at the exercise edition, outputs and
    execution counts cleared, metadata trimmed."""
    student = copy.deepcopy(nb)
    student.metadata = {key: nb.metadata[key] for key in _KEEP_NOTEBOOK_METADATA if key in nb.metadata}
    for index, cell in enumerate(student.cells):
        cell.metadata = {key: cell.metadata[key] for key in _KEEP_CELL_METADATA if key in cell.metadata}
        if index == 0 and cell.cell_type == "markdown":
            cell.source = cell.source.replace(SOLUTIONS_BADGE, EXERCISES_BADGE).replace(
                SOLUTIONS_NOTE.format(name=Path(name).name), EXERCISES_NOTE.format(name=Path(name).name))
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source, where=f"{name}, cell {index + 1}")
        cell.outputs, cell.execution_count = [], None
    return student


def _build(src: Path) -> dict[str, str]:
    """{file name: the exercise edition's text} for every `src/*.ipynb`; a marker error raises before any write."""
    sources = sorted(Path(src).glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no notebooks in {src}: run from the repository root or pass --src")
    return {path.name: nbformat.writes(student_notebook(nbformat.read(path, as_version=4), name=str(path))) + "\n"
            for path in sources}


def build(src: Path, out: Path) -> list[Path]:
    """Write the exercise edition of every `src/*.ipynb` into `out/` (stale notebooks there are removed)."""
    students = _build(src)  # everything first, so that a marker error leaves the previous build untouched
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        if old.name not in students:
            old.unlink()
    written = []
    for name, text in students.items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(src: Path, out: Path) -> list[str]:
    """What in `out/` differs from a fresh build of `src/`: one line per notebook that is missing, extra or edited."""
    students = _build(src)
    present = {path.name for path in Path(out).glob("*.ipynb")}
    problems = [f"{name}: missing" for name in sorted(set(students) - present)]
    problems += [f"{name}: not in {src}" for name in sorted(present - set(students))]
    problems += [f"{name}: differs from the build of {Path(src) / name}" for name in sorted(set(students) & present)
                 if (Path(out) / name).read_text(encoding="utf-8") != students[name]]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=Path("notebooks/solutions"),
                        help="solutions notebooks (default: notebooks/solutions)")
    parser.add_argument("--out", type=Path, default=Path("notebooks"), help="exercise edition (default: notebooks)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out differs from a build")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale(args.src, args.out)
            for problem in problems:
                print(f"  {args.out}/{problem}", file=sys.stderr)
            if problems:
                print("the exercise edition is out of date: run `make student` and commit it", file=sys.stderr)
            return 1 if problems else 0
        written = build(args.src, args.out)
    except (MarkerError, FileNotFoundError) as error:
        print(f"student build failed: {error}", file=sys.stderr)
        return 1
    for path in written:
        stubs = path.read_text(encoding="utf-8").count(YOUR_CODE)
        print(f"  {path}  ({stubs} exercise{'s' if stubs != 1 else ''} stubbed)")
    print(f"wrote {len(written)} exercise notebook(s) to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
