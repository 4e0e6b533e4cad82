"""Packaging: the core dependencies are what course_lib and the notebooks import (what Colab's setup cell installs),
JupyterLab lives in the [lab] extra, pyproject.toml, environment.yml and the Makefile agree, every import is a
declared dependency, the CLI starts, and importing the package has no side effects."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", REQUIREMENT.match(requirement.strip())[1]).lower()


def _declared(*extras: str) -> set[str]:
    requirements = PYPROJECT["project"]["dependencies"]
    for extra in extras:
        requirements = requirements + PYPROJECT["project"]["optional-dependencies"][extra]
    return {_name(r) for r in requirements}


def _extra(name: str) -> set[str]:
    return {_name(r) for r in PYPROJECT["project"]["optional-dependencies"][name]}


def _environment_yml() -> dict:
    """environment.yml's channels, conda dependencies and pip installs (read as text: no YAML library needed)."""
    sections, key, in_pip = {"channels": [], "dependencies": [], "pip": []}, None, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        if not line.startswith(" ") and not line.startswith("-"):
            key, in_pip = stripped.split(":", 1)[0], False
        elif stripped.strip() == "- pip:":
            in_pip = True
        elif stripped.strip().startswith("- ") and key in sections:
            item = stripped.strip()[2:].strip()
            indent = len(line) - len(line.lstrip())
            in_pip = in_pip and indent > 2
            sections["pip" if in_pip else key].append(item)
    return sections


def test_every_dependency_has_only_a_lower_bound():
    project = PYPROJECT["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    for requirement in requirements:
        spec = REQUIREMENT.match(requirement)[3]
        assert re.fullmatch(r">=\s*[\w.]+", spec), f"{requirement!r}: use a lower bound only (name>=version)"
    assert re.fullmatch(r">=\s*3\.\d+", project["requires-python"])


def test_dev_extra_has_the_test_tools():
    assert {"pytest", "nbval", "nbclient"} <= _extra("dev")


def test_jupyterlab_and_ipykernel_are_in_the_lab_extra_not_in_core():
    """Colab runs its own notebook server: the core (what the setup cell installs there) has no JupyterLab."""
    assert {"jupyterlab", "ipykernel"} <= _extra("lab")
    assert not _declared() & {"jupyterlab", "ipykernel", "notebook", "jupyter", "jupyter-server"}


def test_environment_yml_installs_this_package_with_lab_and_dev_through_pip():
    env = _environment_yml()
    assert env["channels"] == ["conda-forge"]
    assert any(re.fullmatch(r"(-e\s+)?\.\[lab,dev\]", item) for item in env["pip"]), "pip: - -e .[lab,dev] is missing"
    assert "pip" in env["dependencies"]
    python = next((d for d in env["dependencies"] if d.startswith("python")), "")
    version = re.fullmatch(r"python\s*=+\s*(\d+)\.(\d+)[\d.]*", python)
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=").strip()
    assert version and (int(version[1]), int(version[2])) >= tuple(map(int, minimum.split("."))), \
        f"environment.yml needs a python=X.Y at or above requires-python {minimum}, got {python!r}"
    others = [d for d in env["dependencies"] if not re.match(r"(python|pip)\b", d)]
    assert all(_name(re.split(r"[=<>]", d)[0]) in _declared() for d in others), \
        f"conda packages {others} must also be pyproject dependencies (pyproject is the one list)"


def _sources(folder: Path):
    """(file, tree) for every Python file under `folder`, and for every code cell of its notebooks (IPython magics
    and shell lines dropped)."""
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))
    for path in sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
                yield path, ast.parse(code, filename=str(path))


def _third_party_imports(folder: Path) -> dict[str, str]:
    """Top-level third-party modules imported anywhere under `folder` (Python files and notebook code cells) -> a
    file that imports it. Imports inside a `try` that catches ImportError (optional extras, fallbacks) are skipped."""
    found = {}
    for path, tree in _sources(folder):
        optional = {id(node) for block in ast.walk(tree) if isinstance(block, ast.Try)
                    and any(_catches_import_error(h) for h in block.handlers)
                    for statement in block.body + [s for h in block.handlers for s in h.body]
                    for node in ast.walk(statement)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("course_lib", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _located_packages(folder: Path) -> set[str]:
    """Packages that code under `folder` finds without importing them (`find_spec("name")`: data files they ship)."""
    return {node.args[0].value.split(".")[0] for _, tree in _sources(folder) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "find_spec"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = ast.dump(handler.type) if handler.type is not None else ""
    return "ImportError" in names or "ModuleNotFoundError" in names


def _installed_with(names: set[str]) -> set[str]:
    """`names` and everything pip installs along with them (their requirements, recursively, no extras)."""
    closure, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requirements if "extra ==" not in r and "extra==" not in r]
    return closure


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names needs Python 3.10")
@pytest.mark.parametrize("folder, extras", [("course_lib", ()), ("notebooks", ()), ("tests", ("dev",))])
def test_every_import_is_installed_by_the_declared_dependencies(folder, extras):
    """What pip installs for the core (course_lib, and both editions of the notebooks: what Colab's setup cell
    installs) or for core + [dev] (tests), the declared packages and their requirements, covers every import."""
    distributions = metadata.packages_distributions()
    installed = _installed_with(_declared(*extras))
    missing = {}
    for module, where in _third_party_imports(ROOT / folder).items():
        if not {_name(d) for d in distributions.get(module, [module])} & installed:
            missing[module] = where
    assert not missing, f"imported but neither declared in pyproject.toml nor required by a dependency: {missing}"


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names needs Python 3.10")
def test_core_is_what_course_lib_and_the_notebooks_use():
    """Each core dependency provides a module that course_lib or a notebook imports (or finds for its data files):
    Colab installs the core, so nothing rides along that the course does not use."""
    modules = set(_third_party_imports(ROOT / "course_lib")) | set(_third_party_imports(ROOT / "notebooks")) | \
        _located_packages(ROOT / "course_lib")
    provides = {}
    for module, names in metadata.packages_distributions().items():
        for name in names:
            provides.setdefault(_name(name), set()).add(module)
    unused = sorted(d for d in _declared() if not provides.get(d, {d.replace("-", "_")}) & modules)
    assert not unused, f"core dependencies that neither course_lib nor a notebook uses: {unused} (an extra?)"


# What Colab preinstalls (googlecolab/backend-info, pip-freeze.gpu.txt): a core bound above these would make the
# setup cell replace Colab's package under the running kernel (ipywidgets>=8 would swap out Colab's 7.7.1 widgets).
COLAB_PREINSTALLED = {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.0.2", "matplotlib": "3.10.0",
                      "pillow": "11.3.0", "ipython": "7.34.0", "ipywidgets": "7.7.1", "tqdm": "4.67.3",
                      "scikit-image": "0.25.2", "mlxtend": "0.23.4"}


def test_colab_preinstalled_versions_satisfy_the_core_bounds():
    from packaging.version import Version
    bounds = {_name(r): REQUIREMENT.match(r)[3].removeprefix(">=").strip()
              for r in PYPROJECT["project"]["dependencies"]}
    too_high = {name: f">={bounds[name]} but Colab has {version}" for name, version in COLAB_PREINSTALLED.items()
                if name in bounds and Version(version) < Version(bounds[name])}
    assert not too_high, f"pip would replace Colab's preinstalled packages: {too_high}"
    assert Version("3.12") >= Version(PYPROJECT["project"]["requires-python"].removeprefix(">=").strip())


def test_make_setup_installs_the_lab_and_dev_extras():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert rule and re.search(r"pip install .*-e \"?\.\[lab,dev\]\"?", rule[1]), "make setup must install -e .[lab,dev]"


def test_the_colab_cell_test_is_opt_in_and_run_by_make_colab_test_and_ci():
    """tests/test_colab_cell.py installs for minutes: deselected by default (make test), run by make colab-test,
    which .ci/run calls after make test."""
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert re.search(r"-m\s+[\'\"]?not colab\b", options["addopts"])
    assert any(m.startswith("colab:") for m in options["markers"])
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^colab-test:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert rule and "tests/test_colab_cell.py" in rule[1] and "-m colab" in rule[1]
    assert "colab-test" in re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)[1].split()
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make colab-test" in steps and steps.index("make colab-test") > steps.index("make test")


def _run(code_or_args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, *code_or_args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=120)


def test_cli_help_works(tmp_path):
    result = _run(["-m", "course_lib", "--help"], tmp_path, COURSE_DATA=str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    for command in ("fetch", "gan", "diffusion", "stylize", "bench"):
        assert command in result.stdout
    assert list(tmp_path.iterdir()) == []


_IMPORT_EVERYTHING = """
import importlib, json, os, pkgutil, sys
before = dict(os.environ)
import course_lib
modules = sorted(m.name for m in pkgutil.walk_packages(course_lib.__path__, "course_lib.")
                 if m.name != "course_lib.__main__")
for name in modules:
    importlib.import_module(name)
import torch
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({"modules": modules, "cuda": torch.cuda.is_initialized(), "env": changed}))
"""


def test_importing_every_module_has_no_side_effects(tmp_path):
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    result = _run(["-c", _IMPORT_EVERYTHING], cwd, COURSE_DATA=str(data))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"course_lib.data", "course_lib.viz", "course_lib.runtime", "course_lib.train"} <= set(report["modules"])
    assert report["cuda"] is False, "importing course_lib initialized CUDA"
    assert report["env"] == [], f"importing course_lib changed environment variables {report['env']}"
    assert list(cwd.iterdir()) == [] and not data.exists(), "importing course_lib wrote files"
    assert result.stdout.strip().count("\n") == 0, f"importing course_lib printed: {result.stdout}"
