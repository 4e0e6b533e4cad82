"""The one place that says where the course lives on GitHub, and the tool that keeps every notebook in step.

    python tools/colab.py --check     # exit 1 and list the problems if a badge or setup cell is out of date
    python tools/colab.py --write     # rewrite the badge and the Colab setup cell of every notebook

Each notebook's first cell (Markdown) carries an "Open In Colab" badge that links to that same notebook in
REPO_URL (the exercise edition `notebooks/NN_*.ipynb`, or the solutions `notebooks/solutions/NN_*.ipynb`); its
second cell is SETUP_CELL, which installs the course only inside Colab and does nothing elsewhere.
The setup cell cannot import this value (the course is not installed yet when it runs), so this tool writes it in.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

__all__ = ["REPO_URL", "BRANCH", "COLAB_ROOT", "SETUP_CELL", "badge_line", "notebook_path", "problems", "fix", "main"]

REPO_URL = "https://github.com/image-gen-course/image-gen-course"
BRANCH = "main"
_REPO_NAME = REPO_URL.rstrip("/").rsplit("/", 1)[-1]

COLAB_ROOT = "/content"  # Colab's working folder: the course is cloned to COLAB_ROOT/<repo name>

SETUP_CELL = f"""\
# Colab setup: runs only inside Google Colab (installs the course); does nothing elsewhere.
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    REPO_URL, ROOT = "{REPO_URL}", "{COLAB_ROOT}/{_REPO_NAME}"
    if not os.path.isdir(ROOT):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, ROOT], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ROOT], check=True)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # an editable install reaches new processes only, not this running kernel
    os.chdir(f"{{ROOT}}/notebooks")"""

_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\(.*\)\]\(.*\)[ \t]*$", re.MULTILINE)


def badge_line(notebook: str) -> str:
    """The Markdown badge that opens `notebooks/<notebook>` of REPO_URL in Colab (`notebook`: a path inside
    notebooks/, such as "01_gan.ipynb" or "solutions/01_gan.ipynb")."""
    github_path = REPO_URL.removeprefix("https://github.com/").rstrip("/")
    target = f"https://colab.research.google.com/github/{github_path}/blob/{BRANCH}/notebooks/{notebook}"
    return f"[![Open In Colab]({_BADGE_IMAGE})]({target})"


def notebook_path(path: Path) -> str:
    """`path` as seen from notebooks/: "01_gan.ipynb" for the exercise edition, "solutions/01_gan.ipynb" for the
    solutions edition."""
    path = Path(path)
    return f"solutions/{path.name}" if path.parent.name == "solutions" else path.name


def problems(path: Path) -> list[str]:
    """What is out of date in the notebook at `path` (empty when the badge and setup cell are right)."""
    nb = nbformat.read(path, as_version=4)
    found, badge = [], badge_line(notebook_path(path))
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return [f"{path.name}: the first cell must be Markdown (title, Colab badge, what you will learn, time)"]
    if badge not in nb.cells[0].source.splitlines():
        found.append(f"{notebook_path(path)}: the first cell lacks the Colab badge line {badge}")
    if len(nb.cells) < 2 or nb.cells[1].cell_type != "code" or nb.cells[1].source.strip() != SETUP_CELL:
        found.append(f"{path.name}: the second cell is not the Colab setup cell of tools/colab.py (REPO_URL {REPO_URL})")
    return found


def fix(path: Path) -> bool:
    """Rewrite the badge and the setup cell of the notebook at `path`; True if the file changed."""
    nb = nbformat.read(path, as_version=4)
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise ValueError(f"{path}: the first cell must be Markdown with the title; add it by hand, then run --write")
    title = nb.cells[0]
    if _BADGE_LINE.search(title.source):
        title.source = _BADGE_LINE.sub(badge_line(notebook_path(path)), title.source, count=1)
    else:  # put the badge right under the title line
        first, _, rest = title.source.partition("\n")
        title.source = f"{first}\n{badge_line(notebook_path(path))}\n{rest}".rstrip("\n")
    has_setup = len(nb.cells) > 1 and nb.cells[1].cell_type == "code" and "google.colab" in nb.cells[1].source
    if has_setup:
        nb.cells[1].source = SETUP_CELL
    else:
        nb.cells.insert(1, nbformat.v4.new_code_cell(SETUP_CELL))
    before = path.read_text(encoding="utf-8")
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="list out-of-date notebooks, exit 1 if any")
    mode.add_argument("--write", action="store_true", help="rewrite the badge and setup cell of every notebook")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: notebooks/[0-9]*.ipynb and notebooks/solutions/[0-9]*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("[0-9]*.ipynb")) + \
        sorted(Path("notebooks/solutions").glob("[0-9]*.ipynb"))
    if args.write:
        for path in paths:
            print(f"  {path}: {'updated' if fix(path) else 'already up to date'}")
        return 0
    found = [problem for path in paths for problem in problems(path)]
    print("\n".join(found) if found else f"{len(paths)} notebook(s): Colab badge and setup cell up to date ({REPO_URL})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
