#!/usr/bin/env python
"""Write example_workflows/<name>.jpg, a picture of each example workflow's graph as ComfyUI's page shows it.

    .venv/bin/python scripts/make_thumbnails.py [NAME ...] [--width 1280] [--quality 85]

Starts the test host's ComfyUI (scripts/install_host.sh) with this pack linked into its custom_nodes (it brings
the embedded model the examples name), opens the page in headless Chromium (scripts/install_browser.sh), loads
each UI-format example (or the NAMEs given, file names without .json) and saves the graph fitted to view. An
example that does not load cleanly (unknown node types, validation alerts) gets no picture and the script exits
with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.browser.frontend import EXAMPLES, Frontend, host_folders, missing_browser, ui_workflows  # noqa: E402
from tests.host.server import ComfyServer, comfyui_installed  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="examples to picture (default: every UI workflow)")
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="folder of the UI-format workflows")
    parser.add_argument("--width", type=int, default=1280, help="picture width in pixels")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    return parser.parse_args(argv)


def select(workflows: list[Path], names: list[str]) -> list[Path]:
    by_name = {path.stem: path for path in workflows}
    unknown = [name for name in names if name.removesuffix(".json") not in by_name]
    if unknown:
        raise SystemExit(f"error: no example named {', '.join(unknown)} (have: {', '.join(by_name)})")
    return [by_name[name.removesuffix(".json")] for name in names] if names else workflows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    problems = missing_browser() + ([] if comfyui_installed() else ["no ComfyUI host (scripts/install_host.sh)"])
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    workflows = select(ui_workflows(args.examples), args.names)
    if not workflows:
        print(f"error: no UI-format workflows in {args.examples}", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory(prefix="md_thumbnails_") as tmp:
        base = Path(tmp)
        custom_nodes, diffusers = host_folders(base)
        with ComfyServer(0, base / "server", custom_nodes, diffusers) as server, Frontend(server.url) as page:
            for path in workflows:
                report = page.load(json.loads(path.read_text(encoding="utf-8")))
                if not report.ok:
                    failed.append(path.name)
                    print(f"{path.name}: not pictured: {report.describe()}", file=sys.stderr)
                    continue
                page.fit_view(width=args.width)
                picture = page.screenshot(path.with_suffix(".jpg"), quality=args.quality)
                print(f"{picture.relative_to(REPO) if picture.is_relative_to(REPO) else picture}: "
                      f"{page.viewport['width']}x{page.viewport['height']}, {picture.stat().st_size // 1024} KiB")
    if failed:
        print(f"error: {len(failed)} example(s) did not load cleanly: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
