"""The shape of course_lib: no import cycles (lazy imports included), argparse only in course_lib/commands/,
no re-exports, modules of at most 450 lines, and a command line whose `--help` loads no torch."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "course_lib"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(name: str, path: Path) -> set[str]:
    """Every module that `name` imports, at module level or inside functions: `import a.b`, `from a import b`
    (b a module or a name in a), `from .x import y`, `from . import x`, `from ..x import y`."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            for alias in node.names:  # `from a import b`: module a.b if there is one, else a name in a
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """course_lib module -> the course_lib modules it imports."""
    return {name: {m for m in _imported(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle [a, b, ..., a] of the graph, or None (depth-first search, colouring the nodes on the path)."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "course_lib.metrics" in graph["course_lib.gan"]  # `from . import metrics` inside gan.evaluate
    assert "course_lib.runtime" in graph["course_lib.data"]  # `from .runtime import ...`
    assert "course_lib.diffusion" in graph["course_lib.benchmarks.diffusion"]  # `from .. import diffusion as D`
    assert "course_lib.defaults" in graph["course_lib.commands.diffusion"]  # `from ..defaults import ...`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle in course_lib: {' -> '.join(cycle)}"


def test_only_the_commands_import_argparse():
    offenders = sorted(name for name, path in MODULES.items()
                       if "argparse" in _imported(name, path) and not name.startswith("course_lib.commands"))
    assert offenders == [], f"argparse outside course_lib/commands/ (the command line lives apart): {offenders}"


def _defined_and_exported(path: Path) -> tuple[set[str], list[str]]:
    """The names a module defines at top level (def, class, assignment) and the names in its __all__."""
    defined, exported = set(), []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                defined.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
                if isinstance(target, ast.Name) and target.id == "__all__":
                    exported = [e.value for e in node.value.elts]
    return defined, exported


def test_modules_export_only_what_they_define():
    """No re-exports: a name is imported from the module that defines it (course_lib/__init__.py's lazy
    get_device, get_profile and seed_everything are the one exception)."""
    offenders = {}
    for name, path in MODULES.items():
        defined, exported = _defined_and_exported(path)
        if name != "course_lib" and (foreign := [n for n in exported if n not in defined]):
            offenders[name] = foreign
    assert offenders == {}, f"__all__ names defined elsewhere (import them from their own module): {offenders}"


def test_no_module_is_over_450_lines():
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    offenders = {name: n for name, n in sorted(lengths.items()) if n > MAX_LINES}
    assert offenders == {}, f"modules over {MAX_LINES} lines (split them by job): {offenders}"


HELP_COMMANDS = [[], ["fetch"], ["gan"], ["gan", "train"], ["gan", "sample"], ["diffusion"], ["diffusion", "train"],
                 ["diffusion", "sample"], ["stylize"], ["fast-style"], ["fast-style", "train"], ["fast-style", "apply"],
                 ["upscale"], ["super-res"], ["super-res", "train"], ["bench"], ["gpu-report"]]
_HELP_LOADS_TORCH = """
import runpy, sys
sys.argv = ["course_lib", *sys.argv[1:], "--help"]
try:
    runpy.run_module("course_lib", run_name="__main__")
except SystemExit as e:
    assert e.code == 0, e.code
print("torch" in sys.modules)
"""


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "course_lib")
def test_help_loads_no_torch(command, tmp_path):
    """`python -m course_lib [COMMAND] --help` answers at once: torch is not imported to print it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _HELP_LOADS_TORCH, *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False", f"`{' '.join(command)} --help` imported torch"


def test_the_help_constants_are_the_code_s():
    """course_lib.defaults holds, without torch, the values that the library uses and the help states."""
    from course_lib import defaults, digit_classifier, gpu_report, runtime, schedulers
    from course_lib import diffusion as D

    assert defaults.PROFILE_NAMES == tuple(runtime.PROFILES)
    assert defaults.SAMPLER_NAMES == tuple(schedulers.SAMPLERS)
    assert D.AUTOGUIDANCE is defaults.AUTOGUIDANCE and D.AUTOGUIDANCE_INTERVAL is defaults.AUTOGUIDANCE_INTERVAL
    assert digit_classifier.JUDGE_CHECKPOINT == defaults.JUDGE_CHECKPOINT
    assert gpu_report.GPU_PLAN.gan_seconds == defaults.GPU_REPORT_GAN_SECONDS
    assert gpu_report.GPU_PLAN.diffusion_seconds == defaults.GPU_REPORT_DIFFUSION_SECONDS
