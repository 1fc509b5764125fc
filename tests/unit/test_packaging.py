"""pyproject.toml: Comfy Registry metadata, dependencies in step with requirements.txt, and `pip install .`."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def normalized(lines) -> dict[str, str]:
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): f"{r.specifier}{'; ' + str(r.marker) if r.marker else ''}" for r in requirements}


def requirements_txt() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    return [line for line in lines if line]


def test_dependencies_match_requirements_txt():
    dependencies = PYPROJECT["project"]["dependencies"]
    assert len(dependencies) == len(set(canonicalize_name(Requirement(d).name) for d in dependencies))
    assert normalized(dependencies) == normalized(requirements_txt())


def test_registry_metadata():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert project["name"] == "comfyui-motiondirector"
    # The registry's node id rules: letters, digits and single - _ . between them, under 100 characters.
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"] and project["license"]
    assert all(url.startswith("https://") for url in project["urls"].values())
    assert comfy["PublisherId"] and comfy["DisplayName"]
    host_version = re.search(r'COMFY_VERSION="([\d.]+)"', (REPO / "scripts" / "install_host.sh").read_text()).group(1)
    assert comfy["requires-comfyui"] == f">={host_version}"  # the version the tests run the pack in


def test_version_matches_the_library():
    text = (REPO / "motiondirector_core" / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r'__version__ = "([^"]+)"', text).group(1) == PYPROJECT["project"]["version"]


def test_pip_install_gives_the_library_and_its_command_line(tmp_path):
    """`pip install .` (offline here: no build isolation, no dependencies) installs motiondirector_core only."""
    source, target, elsewhere = tmp_path / "source", tmp_path / "site", tmp_path / "cwd"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".host", ".test_artifacts", ".pytest_cache", "__pycache__", "*.egg-info", "build",
        "output", "outputs", "example_workflows"))
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(source)], check=True, cwd=elsewhere)
    installed = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info"))
    assert installed == ["motiondirector_core"], installed
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "motiondirector_core", "--version"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert PYPROJECT["project"]["version"] in result.stdout + result.stderr
    where = subprocess.run([sys.executable, "-c", "import motiondirector_core; print(motiondirector_core.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(target)
