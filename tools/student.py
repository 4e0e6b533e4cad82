"""Student builds: the course notebooks with every exercise solution replaced by a stub.

    python tools/student.py                      # notebooks/*.ipynb -> build/student/*.ipynb
    python tools/student.py --src DIR --out DIR

In a source notebook a solution sits between a line `# BEGIN SOLUTION` and a line `# END SOLUTION` (any
indentation); the hints are ordinary comments above it and stay. The student build replaces each block with

    raise NotImplementedError("Exercise: write this part (see the hint above).")

at the block's indentation, so the exercise's check (course_lib.checks) reports "not implemented yet" instead of
crashing the notebook. Outputs and execution counts are cleared and metadata trimmed. Only notebooks are written.
Unbalanced markers stop the build with an error naming the notebook and the cell.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "STUB", "MarkerError", "solution_blocks", "strip_solutions", "student_notebook",
           "build", "main"]

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write this part (see the hint above).")'
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


def strip_solutions(source: str, *, where: str = "cell") -> str:
    """`source` with every solution block (markers included) replaced by the stub at the block's indentation."""
    lines = source.splitlines()
    for begin, end, indent in reversed(solution_blocks(source, where=where)):
        lines[begin:end + 1] = [indent + STUB]
    return "\n".join(lines) + ("\n" if source.endswith("\n") else "")


def student_notebook(nb: nbformat.NotebookNode, *, name: str = "notebook") -> nbformat.NotebookNode:
    """A copy of `nb` with solutions stubbed, outputs and execution counts cleared, metadata trimmed."""
    student = copy.deepcopy(nb)
    student.metadata = {key: nb.metadata[key] for key in _KEEP_NOTEBOOK_METADATA if key in nb.metadata}
    for index, cell in enumerate(student.cells):
        cell.metadata = {key: cell.metadata[key] for key in _KEEP_CELL_METADATA if key in cell.metadata}
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source, where=f"{name}, cell {index + 1}")
        cell.outputs, cell.execution_count = [], None
    return student


def build(src: Path, out: Path) -> list[Path]:
    """Write the student build of every `src/*.ipynb` into `out/` (stale notebooks there are removed)."""
    sources = sorted(Path(src).glob("*.ipynb"))
    if not sources:
        raise FileNotFoundError(f"no notebooks in {src}: run from the repository root or pass --src")
    # Convert everything first, so that a marker error leaves the previous build untouched.
    students = [(path.name, student_notebook(nbformat.read(path, as_version=4), name=str(path))) for path in sources]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.ipynb"):
        stale.unlink()
    written = []
    for name, nb in students:
        nbformat.write(nb, out / name)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=Path("notebooks"), help="source notebooks (default: notebooks)")
    parser.add_argument("--out", type=Path, default=Path("build/student"), help="output folder (default: build/student)")
    args = parser.parse_args(argv)
    try:
        written = build(args.src, args.out)
    except (MarkerError, FileNotFoundError) as error:
        print(f"student build failed: {error}", file=sys.stderr)
        return 1
    for path in written:
        nb = nbformat.read(path, as_version=4)
        stubs = sum(cell.source.count(STUB) for cell in nb.cells if cell.cell_type == "code")
        print(f"  {path}  ({stubs} exercise{'s' if stubs != 1 else ''} stubbed)")
    print(f"wrote {len(written)} student notebook(s) to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
