"""ComfyUI's real frontend in headless Chromium, for the browser check and scripts/make_thumbnails.py.

    from tests.browser.frontend import Frontend, host_folders, ui_workflows
    from tests.host.server import ComfyServer

    custom_nodes, diffusers = host_folders(tmp)
    with ComfyServer(0, tmp / "server", custom_nodes, diffusers) as server, Frontend(server.url) as page:
        report = page.load(json.loads(path.read_text()))   # LoadReport: missing node types, alerts ...
        page.fit_view(); page.screenshot(tmp / "graph.jpg")

The browser is Debian's chromium (/usr/bin/chromium, scripts/install_browser.sh) driven by PyPI's playwright;
`playwright install` is never run. The page's own objects are used: `window.app.loadGraphData(json)` loads a
UI-format workflow as the Load menu does, and a node type is unknown when `LiteGraph.registered_node_types` lacks
it. Standard library + playwright only; no pytest.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
PACK_NAME = "ComfyUI-MotionDirector"
MODEL_NAME = "toyworld-t2v"  # the name the example workflows give the base model
CHROMIUM = Path(os.environ.get("MD_CHROMIUM") or "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 800}
READY_JS = "() => Boolean(window.app && window.app.graph && window.LiteGraph)"

# Loads one workflow and reports what the page thinks of it. Validation problems reach the user as toasts
# ("Invalid workflow against zod schema", "Workflow Validation", ...): the toast store is wrapped meanwhile.
LOAD_JS = """
async (workflow) => {
    const toast = window.app.extensionManager.toast;
    const alerts = [];
    const add = toast.add, addAlert = toast.addAlert;
    toast.add = (message) => { alerts.push(`${message.severity}: ${message.summary}: ${message.detail}`); return add(message); };
    toast.addAlert = (message) => { alerts.push(`alert: ${message}`); return addAlert(message); };
    try {
        await window.app.loadGraphData(workflow);
    } finally {
        toast.add = add;
        toast.addAlert = addAlert;
    }
    const types = new Set();
    const collect = (nodes) => { for (const node of nodes || []) types.add(node.type); };
    collect(workflow.nodes);
    for (const subgraph of (workflow.definitions && workflow.definitions.subgraphs) || []) collect(subgraph.nodes);
    for (const node of window.app.graph.nodes) types.add(node.type);
    const registered = window.LiteGraph.registered_node_types;
    return {
        missing: [...types].filter((type) => !registered[type]).sort(),
        loaded: window.app.graph.nodes.length,
        alerts,
    };
}
"""

# [left, top, width, height] of everything in the graph (nodes with their titles, groups), in graph units.
GRAPH_BOUNDS_JS = """
() => {
    const rects = [...window.app.graph.nodes, ...window.app.graph.groups].map((item) => item.boundingRect);
    if (!rects.length) return null;
    const left = Math.min(...rects.map((r) => r[0])), top = Math.min(...rects.map((r) => r[1]));
    const right = Math.max(...rects.map((r) => r[0] + r[2])), bottom = Math.max(...rects.map((r) => r[1] + r[3]));
    return [left, top, right - left, bottom - top];
}
"""
# Screenshots show only the graph, fitted to view: no canvas statistics, minimap, zoom controls or menus (focus
# mode), and text at every zoom (no low-detail rendering when zoomed out). The page's own Fit View leaves a quarter
# of the picture empty; the same call with a smaller margin fills it.
FIT_JS = """
async ({bounds, fill}) => {
    const manager = window.app.extensionManager;
    await manager.setting.set('Comfy.Graph.CanvasInfo', false);
    await manager.setting.set('Comfy.Minimap.Visible', false);
    await manager.setting.set('Comfy.Graph.CanvasMenu', false);
    await manager.setting.set('LiteGraph.Canvas.MinFontSizeForLOD', 0);
    if (!manager.focusMode) await manager.command.execute('Workspace.ToggleFocusMode');
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));  // relayout
    if (bounds) window.app.canvas.ds.fitToBounds(bounds, {zoom: fill});
    else await manager.command.execute('Comfy.Canvas.FitView');
    window.app.canvas.setDirty(true, true);
}
"""
# Focus mode's own menu button, and tooltips left over from the hidden menus (e.g. "Cancel current run").
HIDE_MENU_CSS = ".comfy-menu-hamburger, .p-tooltip { display: none !important; }"


class FrontendError(RuntimeError):
    """The page did not come up, or did something no test expects."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_browser() -> list[str]:
    """What the browser check lacks on this machine (empty when it can run)."""
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"no chromium at {CHROMIUM} (scripts/install_browser.sh installs Debian's)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package is not installed (scripts/install_browser.sh)")
    return missing


def ui_workflows(folder: Path = EXAMPLES) -> list[Path]:
    """The UI-format workflows directly in `folder` (API copies live in its api/ sub-folder)."""
    found = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("nodes"), list):
            found.append(path)
        else:
            raise FrontendError(f"{path} is not a UI-format workflow (no 'nodes' list); API copies go in api/")
    return found


def host_folders(base: Path) -> tuple[Path, Path]:
    """base/custom_nodes/<pack> -> this repository, as a user installs; an empty base/diffusers (the pack brings
    its embedded model, toyworld-t2v, which the examples name).

    Returns (custom_nodes folder, diffusers folder) for ComfyServer.
    """
    custom_nodes, diffusers = Path(base) / "custom_nodes", Path(base) / "diffusers"
    for folder in (custom_nodes, diffusers):
        folder.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / PACK_NAME
    if not link.is_symlink():
        link.symlink_to(REPO.resolve(), target_is_directory=True)
    return custom_nodes, diffusers


@dataclass
class LoadReport:
    missing: list[str]  # node types the page does not know
    loaded: int  # nodes in the page's graph after loading
    expected: int  # nodes in the workflow file
    alerts: list[str] = field(default_factory=list)  # validation toasts shown while loading
    dialogs: list[str] = field(default_factory=list)  # dialogs open after loading (e.g. missing nodes)
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions in the page while loading

    @property
    def ok(self) -> bool:
        return not (self.missing or self.alerts or self.dialogs or self.page_errors) and self.loaded == self.expected

    def describe(self) -> str:
        return (f"unknown node types: {self.missing}; nodes loaded {self.loaded} of {self.expected}; "
                f"alerts: {self.alerts}; dialogs: {self.dialogs}; page errors: {self.page_errors}")


class Frontend:
    """One headless Chromium page on a running ComfyUI; use as a context manager."""

    def __init__(self, url: str, viewport: dict | None = None, timeout_s: float = 120.0):
        self.url = url
        self.viewport = dict(viewport or VIEWPORT)
        self.timeout_ms = timeout_s * 1000
        self.page_errors: list[str] = []
        self._playwright = self._browser = self.page = None

    def __enter__(self) -> "Frontend":
        if missing_browser():
            raise FrontendError("; ".join(missing_browser()))
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            self.page = self._browser.new_page(viewport=self.viewport)
            self.page.set_default_timeout(self.timeout_ms)
            self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    def open(self) -> None:
        """Load the page, wait for the app, and close the Templates dialog that a first visit opens."""
        self.page.goto(self.url)
        self.page.wait_for_function(READY_JS)
        self.dismiss_templates()

    def dismiss_templates(self, appear_s: float = 10.0) -> None:
        """The Templates dialog opens a moment after the app is ready, on a first visit only."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.locator(".p-dialog").first.wait_for(state="visible", timeout=appear_s * 1000)
        except PlaywrightTimeout:  # no dialog this time (the user's settings say it was seen)
            return
        self.close_dialogs()

    def dialog_texts(self) -> list[str]:
        return self.page.locator(".p-dialog").all_inner_texts()

    def close_dialogs(self) -> None:
        """Close every open dialog: Escape, else the dialog's own close button, as a user would."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        dialogs = self.page.locator(".p-dialog")
        for _ in range(10):
            if dialogs.count() == 0:
                return
            count = dialogs.count()
            self.page.keyboard.press("Escape")
            try:
                self.page.wait_for_function(f"() => document.querySelectorAll('.p-dialog').length < {count}",
                                            timeout=2000)
                continue
            except PlaywrightTimeout:
                pass
            # This frontend (1.32.9) lets Escape close only its "active" dialog; the Templates dialog opened at
            # start is not one.
            dialogs.last.locator("button:has(i.pi-times)").first.click()
            self.page.wait_for_function(f"() => document.querySelectorAll('.p-dialog').length < {count}",
                                        timeout=10000)
        raise FrontendError(f"dialogs stay open: {self.dialog_texts()}")

    def load(self, workflow: dict) -> LoadReport:
        """Load a UI-format workflow (a dict) into the page and report unknown node types and alerts."""
        self.close_dialogs()
        errors_before = len(self.page_errors)
        result = self.page.evaluate(LOAD_JS, workflow)
        self.page.wait_for_timeout(300)  # let dialogs open and late errors of the load surface
        return LoadReport(
            missing=result["missing"], loaded=result["loaded"], expected=len(workflow.get("nodes", [])),
            alerts=result["alerts"], dialogs=self.dialog_texts(), page_errors=self.page_errors[errors_before:],
        )

    def registered(self, node_types: list[str]) -> dict[str, bool]:
        return self.page.evaluate("(types) => Object.fromEntries(types.map((t) => [t, "
                                  "Boolean(window.LiteGraph.registered_node_types[t])]))", node_types)

    def fit_view(self, width: int | None = None, aspect_range: tuple[float, float] = (0.4, 1.0),
                 fill: float = 0.92) -> None:
        """Show the whole graph and nothing but it, filling `fill` of the picture. With `width`, the page is first
        resized to that width and the graph's aspect ratio (height/width kept within aspect_range)."""
        bounds = self.page.evaluate(GRAPH_BOUNDS_JS)
        if width is not None:
            aspect = bounds[3] / bounds[2] if bounds and bounds[2] > 0 else aspect_range[0]
            aspect = min(max(aspect, aspect_range[0]), aspect_range[1])
            self.viewport = {"width": int(width), "height": int(round(width * aspect))}
            self.page.set_viewport_size(self.viewport)
        self.page.add_style_tag(content=HIDE_MENU_CSS)
        self.page.evaluate(FIT_JS, {"bounds": bounds, "fill": fill})
        self.page.wait_for_timeout(300)  # a frame or two to draw

    def screenshot(self, path: Path, quality: int = 85) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = "jpeg" if path.suffix.lower() in {".jpg", ".jpeg"} else "png"
        self.page.screenshot(path=str(path), type=kind, **({"quality": quality} if kind == "jpeg" else {}))
        return path
