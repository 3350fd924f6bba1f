"""The expert explorer in a real JupyterLab, driven by headless Chromium through Playwright.

Starts JupyterLab on a free localhost port (temporary config, runtime, settings and workspace folders;
SSM_FAST=1), opens a temporary copy of notebooks/06_expert_explorer.ipynb, runs all cells from the Run menu,
waits for the widget, changes the expert selector and checks the rendered expert view changed to that expert,
then opens the Feature tab. Screenshots go to tests/artifacts/ (git-ignored); docs/explorer.png in the README
is a copy of tests/artifacts/explorer.png.

Needs Chromium (Debian package ``chromium``; ``.ci/run`` installs it) and the ``playwright`` Python package
(dev extra). Playwright's own browser downloads are never used: we pass the system executable. Skipped
otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_expert_explorer.ipynb"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("SSM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google services (closed networks).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_MS = 600_000  # the FAST notebook takes ~0.5 min alone; CI machines can be much slower


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return (f"Chromium not found at {CHROMIUM}: install Debian's package (apt-get install chromium; "
                ".ci/run does) or set SSM_CHROMIUM to a Chromium executable")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[dev]' (never `playwright install`)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """Render every cell (no windowing) and keep JupyterLab from asking about news or updates."""
    files = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                           "checkForUpdates": False},
    }
    for name, content in files.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server serving a temp folder with a copy of the explorer notebook; killed on teardown."""
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    _write_settings(tmp_path / "settings")
    port, token = _free_port(), "ssm-browser-test"
    env = dict(os.environ, SSM_FAST="1", MPLBACKEND="Agg", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"),  # no user kernelspecs: the kernel is this Python
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), IPYTHONDIR=str(tmp_path / "ipython"))
    log = open(tmp_path / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {server.returncode}:\n"
                            f"{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer within 120 s")
            time.sleep(0.5)
        yield url, token, tmp_path
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """End the server's own process group (the server and its kernels, nothing else)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            pass
        try:
            server.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def test_expert_explorer_runs_and_responds_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright

    url, token, tmp_path = jupyterlab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.set_default_timeout(120_000)
            page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
            # Run All acts on the cells rendered so far: wait for all of them, and for the kernel to be idle
            n_code_cells = sum(c.cell_type == "code" for c in nbformat.read(NOTEBOOK, as_version=4).cells)
            # (window.jupyterapp is exposed by --LabApp.expose_app_in_browser; the idle indicator alone shows
            # up before the kernel's websocket is connected, and a Run All clicked then does nothing)
            page.wait_for_function(
                """n => { const panel = window.jupyterapp?.shell.currentWidget;
                          const kernel = panel?.sessionContext?.session?.kernel;
                          const cells = document.querySelectorAll('.jp-Notebook .jp-CodeCell').length;
                          return cells === n && !!kernel && kernel.connectionStatus === 'connected'
                                 && kernel.status === 'idle'; }""",
                arg=n_code_cells, timeout=120_000, polling=500)
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            first_prompt = "document.querySelector('.jp-CodeCell .jp-InputArea-prompt').textContent"
            page.wait_for_function(f"() => !/\\[ \\]/.test({first_prompt})",  # fail fast if nothing started
                                   timeout=60_000)
            try:  # every code cell numbered ([1], [2], ...): the whole notebook has run
                page.wait_for_function(
                    """n => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
                              return p.length === n && p.every(x => /\\[\\d+\\]/.test(x.textContent)); }""",
                    arg=n_code_cells, timeout=RUN_ALL_TIMEOUT_MS, polling=1000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "jupyterlab_after_run_all.png"), full_page=True)
            failed = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                                  ":has-text('Traceback')")
            assert failed.count() == 0, failed.first.inner_text()

            selector = page.locator(".ssm-expert-selector select")
            view = page.locator(".ssm-expert-view .ssm-expert")
            assert selector.count() == 1, "the explorer widget did not render (widget front end missing?)"
            view.scroll_into_view_if_needed()
            before, shown = view.inner_text(), int(view.get_attribute("data-expert"))
            options = selector.locator("option")
            target = next(i for i in range(options.count()) if i != shown)
            start = time.perf_counter()
            selector.select_option(index=target)
            page.wait_for_function(
                "e => document.querySelector('.ssm-expert-view .ssm-expert').dataset.expert === String(e)",
                arg=target, timeout=30_000)
            round_trip = time.perf_counter() - start  # browser -> kernel -> browser, rendering included
            after = view.inner_text()
            assert after != before and f"expert {target} of" in after
            page.locator(".ssm-explorer").screenshot(path=str(ARTIFACTS / "expert_explorer.png"))

            # the Feature tab renders its contexts in the browser too
            page.locator(".ssm-explorer .lm-TabBar-tab:has-text('Feature')").click()
            feature = page.locator(".ssm-feature-view .ssm-feature")
            feature.wait_for(state="visible", timeout=30_000)
            assert "fires on" in feature.inner_text() and feature.locator("svg rect").count() == 20
            page.locator(".ssm-explorer").screenshot(path=str(ARTIFACTS / "expert_explorer_feature.png"))
        finally:
            browser.close()
    _stack(ARTIFACTS / "expert_explorer.png", ARTIFACTS / "expert_explorer_feature.png",
           ARTIFACTS / "explorer.png")
    print(f"expert change round trip {round_trip * 1000:.0f} ms; screenshots in {ARTIFACTS} (explorer.png is "
          f"the README's docs/explorer.png); browser console errors: {len(errors)}")


def _stack(top: Path, bottom: Path, out: Path) -> None:
    """Both tabs in one image, the Feature tab without its SAE row (the Experts shot has it)."""
    from PIL import Image

    with Image.open(top) as a, Image.open(bottom) as b:
        b = b.crop((0, 33, b.width, b.height))
        canvas = Image.new("RGB", (max(a.width, b.width), a.height + b.height), "white")
        canvas.paste(a, (0, 0))
        canvas.paste(b, (0, a.height))
        canvas.save(out, optimize=True)
