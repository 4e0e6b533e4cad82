"""The Colab setup cell (tools/colab.py SETUP_CELL), played for real: nothing is mocked.

What Colab has when a notebook opens, rebuilt here:
- a Python with torch, torchvision and ipykernel already installed. Building it takes minutes (torch is large), so
  it is cached in build/colab-python-<versions>/ and reused; each test run lays a fresh, empty virtual environment
  on top of it (a .pth file adds the cached site-packages, the way Colab's system site holds its preinstalled
  packages), so the cell's `pip install` starts from the same state every time and never touches the cache;
- a kernel that has `google.colab` imported at start (a stand-in package on PYTHONPATH, imported by an IPython
  startup file), started by nbclient from a kernelspec that points at that Python;
- the course on GitHub: the cell's hard-coded REPO_URL is redirected by git's `url.<base>.insteadOf` in a temporary
  global git config (GIT_CONFIG_GLOBAL) to a local clone source. By default that is this repository's HEAD commit:
  uncommitted changes are NOT in the clone. To try uncommitted work, run with COLAB_TEST_SOURCE=worktree: the
  tracked and untracked (not ignored) files of the working tree are committed into a temporary copy of the
  repository (this repository's git state is left alone), and that copy is cloned instead;
- Colab's /content, replaced by a temporary folder (the only edit made to the cell's text).

The notebook run is the setup cell, then the following cells of notebooks/00_setup.ipynb as committed in the clone
source (the solutions edition where the exercise edition does not exist), with COURSE_PROFILE=smoke and
COURSE_OFFLINE=1. It runs twice, each time in a new kernel: the first run must clone, install the core dependencies
only (no JupyterLab) without replacing what Colab preinstalled, and make course_lib importable in the running
kernel; the second must not clone again. The executed notebooks are written next to the clone (run-1.ipynb,
run-2.ipynb in pytest's temporary folder).

Slow (minutes; network for the PyPI packages Colab lacks, unless pip's cache has them): marked `colab`, deselected
by default (pyproject addopts), run by `make colab-test`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("course_tools_colab", ROOT / "tools" / "colab.py")
colab = importlib.util.module_from_spec(_spec)  # tools/colab.py: SETUP_CELL, REPO_URL, COLAB_ROOT
_spec.loader.exec_module(colab)

pytestmark = pytest.mark.colab

TORCH, TORCHVISION = "2.14.1", "0.29.1"  # the releases on this project's machines (never a newer torch)
PREINSTALLED = [f"torch=={TORCH}", f"torchvision=={TORCHVISION}", "ipykernel"]  # what Colab has that matters here
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
CACHE = ROOT / "build" / f"colab-python-py{PY}-torch{TORCH}-torchvision{TORCHVISION}"
KERNEL = "colab-python"
INSTALL_TIMEOUT = 1800  # seconds: building the cache, and the setup cell's pip install on a cold pip cache
# Packages both layers may hold without the cell having replaced anything: the venv tools of each layer
TOOLS = {"pip", "setuptools", "wheel"}

_PROBE = """\
# Probe (added by tests/test_colab_cell.py): what the setup cell left in this kernel
import importlib.util, json, os, sys
import course_lib
print("PROBE " + json.dumps({"course_lib": course_lib.__file__, "cwd": os.getcwd(), "python": sys.executable,
                             "colab": "google.colab" in sys.modules,
                             "jupyterlab": importlib.util.find_spec("jupyterlab") is not None}))"""

_INVENTORY = """\
import importlib.metadata as md, json, os
print(json.dumps([{"name": d.metadata["Name"], "version": d.version,
                   "at": os.path.realpath(str(d.locate_file("")))} for d in md.distributions()]))"""


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    command = " ".join(map(str, args))
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{PY}" / "site-packages"


@pytest.fixture(scope="module")
def preinstalled() -> Path:
    """The cached Python with Colab's preinstalled torch, torchvision and ipykernel (built once, then reused)."""
    done = CACHE / ".complete"
    if not done.exists():
        shutil.rmtree(CACHE, ignore_errors=True)  # an interrupted build
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", CACHE])
        _run([CACHE / "bin" / "python", "-m", "pip", "install", "--quiet", *PREINSTALLED], timeout=INSTALL_TIMEOUT)
        freeze = _run([CACHE / "bin" / "python", "-m", "pip", "freeze"]).stdout
        done.write_text(freeze)
    return CACHE


def _fresh_python(base: Path, where: Path) -> Path:
    """A new, empty virtual environment at `where` that also sees `base`'s packages (after its own): the Python
    the setup cell installs into. Returns its interpreter."""
    _run([sys.executable, "-m", "venv", where])
    (_site_packages(where) / "00_colab_preinstalled.pth").write_text(
        f"import site; site.addsitedir({str(_site_packages(base))!r})\n")
    return where / "bin" / "python"


def _worktree_snapshot(dest: Path) -> Path:
    """A copy of this repository whose HEAD commit holds the working tree as it is now (tracked and untracked files
    that git does not ignore; deleted files left out). This repository's own git state is not touched."""
    _run(["git", "clone", "--quiet", "--no-checkout", ROOT, dest])
    listed = _run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).stdout
    for name in sorted(set(filter(None, listed.split("\0")))):
        source, target = ROOT / name, dest / name
        if source.is_file() or source.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    _run(["git", "-C", dest, "add", "-A"])
    _run(["git", "-C", dest, "-c", "user.name=colab-test", "-c", "user.email=colab-test@localhost", "commit",
          "--quiet", "--no-verify", "-m", "working tree snapshot (tests/test_colab_cell.py)"])
    return dest


def _clone_source(tmp: Path) -> Path:
    mode = os.environ.get("COLAB_TEST_SOURCE", "HEAD")
    if mode == "HEAD":
        return ROOT
    if mode == "worktree":
        return _worktree_snapshot(tmp / "worktree-snapshot")
    raise ValueError(f"COLAB_TEST_SOURCE must be HEAD or worktree, not {mode!r}")


def _colab_notebook(content: Path, source: Path) -> nbformat.NotebookNode:
    """The setup cell (Colab's /content -> `content`), then the cells after the setup cell of 00_setup.ipynb as
    committed in `source` (what Colab opens from GitHub: the exercise edition, or the solutions edition where the
    exercise edition does not exist yet), then a probe cell."""
    for name in ("notebooks/00_setup.ipynb", "notebooks/solutions/00_setup.ipynb"):
        shown = subprocess.run(["git", "-C", str(source), "show", f"HEAD:{name}"], capture_output=True, text=True)
        if shown.returncode == 0:
            break
    assert shown.returncode == 0, f"{source}: no 00_setup.ipynb in the HEAD commit"
    setup_nb = nbformat.reads(shown.stdout, as_version=4)
    assert "google.colab" in setup_nb.cells[1].source, f"{name}: the second cell is not the Colab setup cell"
    cell = colab.SETUP_CELL.replace(f'"{colab.COLAB_ROOT}/', f'"{content}/')
    assert cell != colab.SETUP_CELL, "the setup cell no longer names COLAB_ROOT"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell), *setup_nb.cells[2:], nbformat.v4.new_code_cell(_PROBE)]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Colab-like Python", "language": "python"}
    return nb


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append("\n".join(output.traceback))
        elif "text/plain" in output.get("data", {}):
            parts.append(output.data["text/plain"])
    return "".join(parts)


def _execute(nb, *, kernels: Path, content: Path, env: dict, save: Path) -> tuple[nbformat.NotebookNode, float]:
    """Run `nb` top to bottom in a new kernel (cwd `content`); fails with the cell's output on an error. The executed
    notebook is written to `save` (pytest keeps its last three temporary folders) for a look afterwards."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(nb, km=km, timeout=INSTALL_TIMEOUT, startup_timeout=120,
                            resources={"metadata": {"path": str(content)}})
    start = time.perf_counter()
    try:
        client.execute(env=env, cleanup_kc=True)  # cleanup_kc: shut the kernel down at the end (km is ours)
    except CellExecutionError as error:
        pytest.fail(f"a cell failed in the Colab-like kernel (notebook: {save}):\n{error}")
    finally:
        nbformat.write(nb, save)
    return nb, time.perf_counter() - start


def _inventory(python: Path, env: dict) -> list[dict]:
    return json.loads(_run([python, "-c", _INVENTORY], cwd="/", env=env).stdout)


def test_setup_cell_installs_the_course_in_a_colab_like_python_and_runs_00_setup_twice(preinstalled, tmp_path):
    content, fake, kernels, ipython_dir = (tmp_path / name for name in ("content", "fake", "kernels", "ipython"))
    for folder in (content, fake / "google" / "colab", kernels / KERNEL, ipython_dir / "profile_default" / "startup"):
        folder.mkdir(parents=True)
    python = _fresh_python(preinstalled, tmp_path / "colab-python")

    # google.colab: a namespace package `google` (no __init__.py, so google.protobuf & co. still import), imported
    # when the kernel starts, as Colab's kernel has it imported
    (fake / "google" / "colab" / "__init__.py").write_text(
        '"""Stand-in for Colab\'s google.colab (tests/test_colab_cell.py): the setup cell only looks it up in '
        'sys.modules."""\n')
    (ipython_dir / "profile_default" / "startup" / "00-google-colab.py").write_text("import google.colab\n")
    (kernels / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like Python", "language": "python"}))

    source = _clone_source(tmp_path)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{source}"]\n\tinsteadOf = {colab.REPO_URL}\n'
                         f"[safe]\n\tdirectory = {source}\n\tdirectory = {source}/.git\n")

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COURSE_", "JUPYTER", "PYTHON", "VIRTUAL_ENV", "MPLBACKEND", "GIT_", "PYTEST_"))}
    # (PYTEST_CURRENT_TEST would also stop ipykernel from capturing subprocess output such as git's into the cell)
    venv_bins = {str(ROOT / ".venv" / "bin"), str(Path(sys.prefix) / "bin")}
    env.update(PATH=os.pathsep.join([str(python.parent)] + [p for p in os.environ.get("PATH", "").split(os.pathsep)
                                                             if p not in venv_bins]),
               PYTHONPATH=str(fake), IPYTHONDIR=str(ipython_dir), GIT_CONFIG_GLOBAL=str(gitconfig),
               GIT_CONFIG_NOSYSTEM="1", COURSE_PROFILE="smoke", COURSE_OFFLINE="1")

    before = _inventory(python, env)

    root = content / colab.REPO_URL.rstrip("/").rsplit("/", 1)[-1]

    # First run: clone, install, then 00_setup in the same kernel
    first, first_seconds = _execute(_colab_notebook(content, source), kernels=kernels, content=content, env=env,
                                    save=tmp_path / "run-1.ipynb")
    setup_output = _text(first.cells[0])
    assert "Cloning into" in setup_output, f"the setup cell did not clone:\n{setup_output}"
    assert (root / "notebooks").is_dir() and (root / "course_lib" / "__init__.py").is_file()
    probe_text = _text(first.cells[-1])
    probe = json.loads(probe_text.split("PROBE ", 1)[1])
    assert probe["colab"] is True
    assert probe["python"] == str(python)
    assert Path(probe["course_lib"]).resolve() == (root / "course_lib" / "__init__.py").resolve()
    assert Path(probe["cwd"]).resolve() == (root / "notebooks").resolve()
    assert probe["jupyterlab"] is False, "the setup cell installed JupyterLab: it belongs in the [lab] extra"

    # What pip did to the fresh Python: the course and its core dependencies, nothing of JupyterLab, and nothing that
    # Colab preinstalled was replaced (everything new lies in the fresh layer, nothing there shadows the cache)
    after = _inventory(python, env)
    names = {d["name"].lower().replace("_", "-") for d in after}
    assert "course-lib" in names
    lab = names & {"jupyterlab", "jupyter-server", "notebook"}
    assert not lab, f"the setup cell installed {sorted(lab)}: they belong in the [lab] extra, not in the core"
    layer, cache = str(_site_packages(tmp_path / "colab-python").resolve()), str(_site_packages(preinstalled).resolve())
    before_ids = {(d["name"].lower(), d["version"], d["at"]) for d in before}
    added = [d for d in after if (d["name"].lower(), d["version"], d["at"]) not in before_ids]
    preinstalled_names = {d["name"].lower() for d in before if d["at"].startswith(cache)}
    replaced = sorted(d["name"] for d in added if d["name"].lower() in preinstalled_names - TOOLS)
    assert not replaced, f"the setup cell replaced packages Colab preinstalls: {replaced}"
    assert all(d["at"].startswith(layer) for d in added), [d for d in added if not d["at"].startswith(layer)]
    fresh_process = _run([python, "-c", "import course_lib; print(course_lib.__file__)"], cwd=tmp_path, env=env)
    assert Path(fresh_process.stdout.strip()).resolve() == (root / "course_lib" / "__init__.py").resolve(), \
        "the editable install does not reach new processes"

    # Second run, in a new kernel: the clone is reused (a file dropped into it survives), 00_setup runs again
    marker = root / "colab-test-marker"
    marker.write_text("left by tests/test_colab_cell.py between the two runs\n")
    head = _run(["git", "-C", root, "rev-parse", "HEAD"], env=env).stdout
    second, second_seconds = _execute(_colab_notebook(content, source), kernels=kernels, content=content, env=env,
                                      save=tmp_path / "run-2.ipynb")
    everything = "".join(_text(cell) for cell in second.cells)
    assert "Cloning into" not in everything, f"the second run cloned again:\n{_text(second.cells[0])}"
    assert marker.exists(), "the second run replaced the clone"
    assert _run(["git", "-C", root, "rev-parse", "HEAD"], env=env).stdout == head
    probe = json.loads(_text(second.cells[-1]).split("PROBE ", 1)[1])
    assert Path(probe["course_lib"]).resolve() == (root / "course_lib" / "__init__.py").resolve()
    print(f"\nColab setup cell: first run (clone + install + 00_setup) {first_seconds:.0f} s, "
          f"second run {second_seconds:.0f} s; packages the cell added: {len(added)}")
