"""The core's shape: no import cycles, and no family's module names outside its own package."""

import ast
import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "motiondirector_core"


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every motiondirector_core module `path` imports, at module level or inside functions."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found.update(n for n in [target, *names] if n.startswith("motiondirector_core"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("motiondirector_core"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in CORE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {t for t in imports(path) if t in modules and t != name}
    return edges


def test_the_core_has_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


FAMILY_NAMES = re.compile(r"temp_attentions|transformer_in\b|motion_modules|UNet3DConditionModel|UNetMotionModel|"
                          r"MotionAdapter|temporal_transformer")


def test_no_family_module_names_outside_the_families():
    offenders = []
    for path in CORE.rglob("*.py"):
        relative = path.relative_to(CORE)
        if relative.parts[0] in ("families", "toyworld"):  # toyworld builds a ModelScope-family model of its own
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FAMILY_NAMES.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
