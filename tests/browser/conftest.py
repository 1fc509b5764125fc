"""One real ComfyUI server (the pack linked into its custom_nodes) and one headless Chromium page per test module.

Module scope, not session: while playwright's sync API is open it marks an asyncio loop as running in the main
thread, and every later `asyncio.run()` (the in-process node tests load ComfyUI with it) would fail.

Without chromium, playwright or the ComfyUI host the browser check skips, except in CI (CI=true), where
scripts/test.sh has installed them and their absence is a failure.
"""

from pathlib import Path

import pytest

from tests.browser.frontend import REPO, Frontend, host_folders, in_ci, missing_browser
from tests.host.server import ComfyServer, comfyui_installed

ARTIFACTS = REPO / ".test_artifacts" / "browser"


@pytest.fixture(scope="session")
def browser_available():
    problems = missing_browser()
    if not comfyui_installed():
        problems.append("the ComfyUI host is not installed (scripts/install_host.sh)")
    if problems:
        message = "browser check cannot run: " + "; ".join(problems)
        if in_ci():
            pytest.fail(message + " (CI=true: scripts/test.sh installs them, so this is an error)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def comfy_server(browser_available, tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    custom_nodes, diffusers = host_folders(base)
    with ComfyServer(0, base / "server", custom_nodes, diffusers) as server:
        yield server


@pytest.fixture(scope="module")
def frontend(comfy_server):
    with Frontend(comfy_server.url) as page:
        yield page


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
