"""End-to-end check in a real browser: JupyterLab + headless Chromium, the way a student meets the course.

    python tools/e2e.py [NOTEBOOK] [--chromium /usr/bin/chromium] [--out build/e2e] [--timeout 300]

Starts JupyterLab on 127.0.0.1 (a free port, a token, COURSE_PROFILE=smoke) as `make lab` does, opens NOTEBOOK
(default notebooks/01_gan.ipynb; tests/fixtures/99_e2e_widget.ipynb stands in while that does not exist), runs
Run > Run All Cells, waits until every cell has run, fails on any error output, moves the ipywidgets slider whose
description is "t" (the latent interpolation) with the keyboard, checks that the image next to it changes, and
saves a screenshot to OUT/<notebook>.png. JupyterLab is stopped in every case; the notebook file is never saved.
Exit code 0 when everything held, 1 with the reason otherwise. `make e2e` installs Chromium and runs this.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

__all__ = ["E2EFailure", "jupyter_lab", "check_notebook", "main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = Path("notebooks/01_gan.ipynb")
FALLBACK_NOTEBOOK = Path("tests/fixtures/99_e2e_widget.ipynb")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# JupyterLab settings for the run: never save the notebook, render every cell, no news or extension manager.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w+(Error|Exception): ", re.MULTILINE)

# The notebook's state, read from JupyterLab's own model (window.jupyterapp, exposed by --LabApp.expose_app_in_browser).
NOTEBOOK_STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const kernel = panel.sessionContext.session ? panel.sessionContext.session.kernel : null;
  const cells = [];
  const model = panel.content.model;
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    if (cell.type !== 'code' || cell.sharedModel.getSource().trim() === '') continue;
    const errors = cell.outputs.toJSON().filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`);
    cells.push({index: i, count: cell.executionCount, errors: errors});
  }
  return {kernel: kernel ? kernel.status : 'none', cells: cells};
}"""
KERNEL_READY_JS = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return !!(session && session.kernel && session.kernel.status === 'idle'
            && session.kernel.connectionStatus === 'connected');
}"""
# Put the slider near the top of the notebook view, the end of its code cell just above it, for the screenshot.
SCROLL_TO_JS = """(el) => {
  el.scrollIntoView({block: 'start'});
  let box = el.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY !== 'visible')) box = box.parentElement;
  if (box) box.scrollTop = Math.max(0, box.scrollTop - 150);
}"""
# Tracebacks rendered anywhere, including inside widget Output areas (an interact callback that raised).
RENDERED_ERRORS_JS = """() => Array.from(document.querySelectorAll(
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')).map(e => e.innerText)"""
# A digest of every image and canvas in an element's output area, by content (blob: URLs change on every update).
IMAGES_JS = """async (cell) => {
  const hex = async (bytes) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)))
      .map(b => b.toString(16).padStart(2, '0')).join('');
  const found = [];
  for (const el of cell.querySelectorAll('.jp-Cell-outputArea img, .jp-Cell-outputArea canvas')) {
    const url = el.tagName === 'IMG' ? el.src : el.toDataURL();
    found.push(await hex(await (await fetch(url)).arrayBuffer()));
  }
  return found;
}"""


class E2EFailure(RuntimeError):
    """What went wrong, in a sentence the person running `make e2e` can act on."""


_STARTED = time.monotonic()


def _log(message: str) -> None:
    print(f"[e2e {time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _wait_for_server(url: str, process: subprocess.Popen, log_path: Path, *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise E2EFailure(f"JupyterLab exited with code {process.returncode} while starting:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise E2EFailure(f"JupyterLab did not answer at {url} within {timeout:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _stop(process: subprocess.Popen, base: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then terminate, then kill its process group."""
    if process.poll() is None:
        try:
            request = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                             headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(request, timeout=10).close()
            process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def jupyter_lab(notebook_dir: Path, *, log_path: Path):
    """JupyterLab serving `notebook_dir` on 127.0.0.1 with a token; yields (base_url, token); always stopped."""
    port, token = _free_port(), secrets.token_hex(16)
    # the solutions must pass every check; in the exercise edition an untouched exercise is "not done yet", no error
    strict = "1" if notebook_dir.name == "solutions" else "0"
    env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_CHECKS_STRICT": strict}
    env.pop("MPLBACKEND", None)  # the kernel must use the inline backend to show figures
    with tempfile.TemporaryDirectory(prefix="course-e2e-") as scratch:
        _write_settings(Path(scratch) / "settings")
        command = [str(Path(sys.executable).parent / "jupyter"), "lab", f"--notebook-dir={notebook_dir}",
                   "--ip=127.0.0.1", f"--port={port}", "--no-browser", f"--IdentityProvider.token={token}",
                   "--ServerApp.port_retries=0", f"--LabApp.user_settings_dir={scratch}/settings",
                   f"--LabApp.workspaces_dir={scratch}/workspaces", "--LabApp.expose_app_in_browser=True"]
        if os.geteuid() == 0:  # containers and CI run as root; JupyterLab refuses that without the flag
            command.append("--allow-root")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for_server(f"{base}/api/status?token={token}", process, log_path)
            yield base, token
        finally:
            _stop(process, base, token)


def _wait_for_kernel_and_cells(page, *, timeout: float, stall: float = 30) -> dict:
    """Poll JupyterLab's model until every code cell has an execution count and the kernel is idle."""
    deadline, state, idle_since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE_JS)
        idle_since = idle_since if state["kernel"] == "idle" else time.monotonic()
        if time.monotonic() - idle_since > stall:  # nothing runs and nothing is queued: Run All did not take
            break
        errors = [f"cell {c['index'] + 1}: {e}" for c in state["cells"] for e in c["errors"]]
        if errors and state["kernel"] == "idle":
            raise E2EFailure("the notebook raised an error:\n  " + "\n  ".join(errors))
        if state["kernel"] == "idle" and all(c["count"] is not None for c in state["cells"]):
            return state
        if state["kernel"] in ("dead", "unknown"):
            raise E2EFailure(f"the kernel is {state['kernel']} (out of memory?)")
        page.wait_for_timeout(1000)
    pending = [c["index"] + 1 for c in (state or {"cells": []})["cells"] if c["count"] is None]
    raise E2EFailure(f"cells {pending} never ran (kernel {state and state['kernel']}; waited up to {timeout:.0f} s)")


def _run_all_cells(page) -> None:
    """Run > Run All Cells, through the menu bar as a person would."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _slider(page, description: str):
    label = page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
    sliders = page.locator(".widget-slider").filter(has=label)
    if sliders.count() == 0:
        found = page.locator(".widget-slider .widget-label").all_inner_texts()
        raise E2EFailure(f"no ipywidgets slider with description {description!r} (sliders found: {found})")
    return sliders.first


def _move_slider(page, slider, *, presses: int = 3) -> tuple[str, str]:
    """Focus the slider's handle and press the right arrow; returns the readout before and after."""
    readout = slider.locator(".widget-readout")
    before = readout.inner_text()
    slider.scroll_into_view_if_needed()
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    for _ in range(presses):
        handle.press("ArrowRight")
        page.wait_for_timeout(300)
    after = readout.inner_text()
    if after == before:  # at the right end already: go the other way
        for _ in range(presses):
            handle.press("ArrowLeft")
            page.wait_for_timeout(300)
        after = readout.inner_text()
    if after == before:
        raise E2EFailure(f"the slider did not move with the arrow keys (readout stays {before!r})")
    return before, after


def _wait_for_image_change(cell, before: list[str], *, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = cell.evaluate(IMAGES_JS)
        if now and now != before:
            return now
        time.sleep(0.5)
    raise E2EFailure(f"the image next to the slider did not change within {timeout:.0f} s of moving it")


def _fail_on_rendered_error(page) -> None:
    rendered = [text for text in page.evaluate(RENDERED_ERRORS_JS) if TRACEBACK.search(text)]
    if rendered:
        raise E2EFailure("an error was rendered in the notebook:\n" + rendered[0][-2000:])


def check_notebook(page, base: str, token: str, name: str, *, out: Path, timeout: float, description: str) -> None:
    """Open, run all, assert no errors, move the slider, see the image change, screenshot."""
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_function(KERNEL_READY_JS, timeout=120_000)
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    # Stored outputs would carry execution counts that look like a finished run: start from a clean slate.
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    _log(f"opened {name}; Run > Run All Cells")
    _run_all_cells(page)
    state = _wait_for_kernel_and_cells(page, timeout=timeout)
    _fail_on_rendered_error(page)
    _log(f"all {len(state['cells'])} code cells ran, no error output")
    slider = _slider(page, description)
    cell = slider.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]")
    images = cell.evaluate(IMAGES_JS)
    if not images:
        raise E2EFailure(f"no image (img or canvas) in the output of the cell holding slider {description!r}")
    before, after = _move_slider(page, slider)
    try:
        _wait_for_image_change(cell, images)
    finally:
        _fail_on_rendered_error(page)  # the slider's callback may have raised
    _log(f"slider {description!r} moved {before} -> {after}; the image changed")
    slider.evaluate(SCROLL_TO_JS)
    page.wait_for_timeout(500)
    screenshot = out / f"{Path(name).stem}.png"
    page.screenshot(path=str(screenshot))
    _log(f"screenshot: {screenshot}")


def _failure_screenshot(page, path: Path) -> None:
    try:
        page.screenshot(path=str(path))
        _log(f"failure screenshot: {path}")
    except Exception as error:  # a crashed page must not hide the real failure
        _log(f"no failure screenshot ({error})")


def _run(notebook: Path, *, chromium: str, out: Path, timeout: float, description: str) -> None:
    from playwright.sync_api import Error as PlaywrightError, sync_playwright
    original = notebook.read_bytes()
    (out / f"{notebook.stem}_failure.png").unlink(missing_ok=True)  # from an earlier run
    try:
        with jupyter_lab(notebook.parent.resolve(), log_path=out / "jupyter.log") as (base, token), sync_playwright() as p:
            _log(f"JupyterLab up at {base} (log: {out / 'jupyter.log'})")
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            try:
                check_notebook(page, base, token, notebook.name, out=out, timeout=timeout, description=description)
            except (E2EFailure, PlaywrightError):
                _failure_screenshot(page, out / f"{notebook.stem}_failure.png")
                raise
            finally:
                browser.close()
    except PlaywrightError as error:
        raise E2EFailure(f"the browser step failed: {error}") from error
    finally:
        if notebook.read_bytes() != original:  # never leave outputs in the source notebook
            notebook.write_bytes(original)
            _log(f"restored {notebook} (JupyterLab had written to it)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=DEFAULT_NOTEBOOK)
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary (default: Debian's)")
    parser.add_argument("--out", type=Path, default=Path("build/e2e"), help="screenshots and log (default: build/e2e)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for Run All Cells (default: 300)")
    parser.add_argument("--slider", default="t", help='description of the slider to move (default: "t")')
    args = parser.parse_args(argv)
    notebook = args.notebook
    if not notebook.exists() and notebook == DEFAULT_NOTEBOOK and (ROOT / FALLBACK_NOTEBOOK).exists():
        notebook = ROOT / FALLBACK_NOTEBOOK
        print(f"WARNING: {DEFAULT_NOTEBOOK} does not exist yet; testing the stand-in {FALLBACK_NOTEBOOK}", flush=True)
    try:
        if not notebook.exists():
            raise E2EFailure(f"no notebook at {notebook}")
        if not Path(args.chromium).exists():
            raise E2EFailure(f"no Chromium at {args.chromium}: `make e2e` installs Debian's (apt-get install chromium)")
        args.out.mkdir(parents=True, exist_ok=True)
        _run(notebook, chromium=args.chromium, out=args.out, timeout=args.timeout, description=args.slider)
    except E2EFailure as error:
        print(f"E2E FAILED ({notebook.name}): {error}", file=sys.stderr)
        return 1
    print(f"E2E PASSED ({notebook.name}): ran every cell with no error, slider moved, image changed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
