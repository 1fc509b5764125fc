"""A real ComfyUI server in a subprocess, for tests (no pytest needed, standard library only).

    from tests.host.server import ComfyServer

    with ComfyServer(port=0, base_dir=tmp, custom_nodes_dir=nodes_parent, models_dir=diffusers_dir) as srv:
        prompt_id = srv.queue(api_prompt)          # API-format graph (dict)
        entry = srv.wait(prompt_id, timeout=300)   # the /history entry, entry["status"]["status_str"]
        srv.object_info("SaveVideo")

`custom_nodes_dir` is the folder that *holds* node packs (ComfyUI imports each subfolder as a package),
`models_dir` the folder registered as ComfyUI's `diffusers` model folder (subfolders with
model_index.json). More model folders: `model_paths={"loras": path}`. Everything the server writes
(output/, input/, user/, temp/, its database, comfyui.log, paths.yaml) goes under `base_dir`.
The host comes from scripts/install_host.sh; the server runs tests/host/launch_comfyui.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
LAUNCHER = HERE / "launch_comfyui.py"
DEFAULT_COMFYUI_DIR = REPO_ROOT / ".host" / "ComfyUI"


class ComfyServerError(RuntimeError):
    """The server did not start, died, or answered with an error."""


class PromptError(ComfyServerError):
    """POST /prompt refused the graph (validation). `.body` holds ComfyUI's JSON answer."""

    def __init__(self, message: str, body):
        super().__init__(message)
        self.body = body


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def comfyui_installed(comfyui_dir: str | Path | None = None) -> bool:
    return (Path(comfyui_dir or os.environ.get("MD_COMFYUI_DIR") or DEFAULT_COMFYUI_DIR) / "main.py").is_file()


class ComfyServer:
    def __init__(
        self,
        port: int | None,
        base_dir: str | Path,
        custom_nodes_dir: str | Path | None,
        models_dir: str | Path | None,
        *,
        model_paths: dict[str, str | Path] | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
        python: str | None = None,
        comfyui_dir: str | Path | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 180.0,
    ):
        self.port = int(port) if port else free_port()
        self.base_dir = Path(base_dir).resolve()
        self.custom_nodes_dir = Path(custom_nodes_dir).resolve() if custom_nodes_dir else None
        self.models_dir = Path(models_dir).resolve() if models_dir else None
        self.model_paths = {k: Path(v).resolve() for k, v in (model_paths or {}).items()}
        self.extra_args = list(extra_args)
        self.python = python or sys.executable
        self.comfyui_dir = Path(comfyui_dir or os.environ.get("MD_COMFYUI_DIR") or DEFAULT_COMFYUI_DIR).resolve()
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        self.output_dir = self.base_dir / "output"
        self.input_dir = self.base_dir / "input"
        self.user_dir = self.base_dir / "user"
        self.log_path = self.base_dir / "comfyui.log"
        self.paths_yaml = self.base_dir / "paths.yaml"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    # ----------------------------------------------------------------------------------- lifecycle
    def write_paths_yaml(self) -> Path:
        # JSON strings are valid YAML scalars: no YAML library needed, any path is quoted safely.
        entries = {}
        if self.custom_nodes_dir:
            entries["custom_nodes"] = self.custom_nodes_dir
        if self.models_dir:
            entries["diffusers"] = self.models_dir
        entries.update(self.model_paths)
        lines = ["md_tests:"] + [f"    {key}: {json.dumps(str(path))}" for key, path in entries.items()]
        if len(lines) == 1:
            lines[0] = "md_tests: {}"
        self.paths_yaml.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self.paths_yaml

    def command(self) -> list[str]:
        return [
            self.python, str(LAUNCHER),
            "--cpu", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-api-nodes",
            "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir),
            "--user-directory", str(self.user_dir),
            "--temp-directory", str(self.base_dir),
            "--database-url", f"sqlite:///{self.base_dir / 'comfyui.db'}",
            "--extra-model-paths-config", str(self.paths_yaml),
            *self.extra_args,
        ]

    def start(self) -> "ComfyServer":
        if self.proc is not None:
            raise ComfyServerError("already started")
        if not (self.comfyui_dir / "main.py").is_file():
            raise ComfyServerError(f"no ComfyUI at {self.comfyui_dir}: run scripts/install_host.sh")
        for folder in (self.base_dir, self.output_dir, self.input_dir, self.user_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.write_paths_yaml()
        env = dict(os.environ)
        env.update({
            "MD_COMFYUI_DIR": str(self.comfyui_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.env)
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=str(self.base_dir), env=env,
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise ComfyServerError(
                    f"ComfyUI exited with code {self.proc.returncode} while starting\n{self.log_tail()}")
            try:
                self.get("/system_stats", timeout=5)
                return
            except (OSError, ComfyServerError):
                pass
            if time.monotonic() > deadline:
                raise ComfyServerError(
                    f"ComfyUI did not answer /system_stats within {self.startup_timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL). Returns its exit code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            code = self.proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "ComfyServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- last {len(text)} lines of {self.log_path} ---\n" + "\n".join(text)

    # ----------------------------------------------------------------------------------------- HTTP
    def _request(self, method: str, path: str, body=None, timeout: float = 30.0):
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.headers.get_content_type(), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get_content_type(), err.read()

    @staticmethod
    def _decode(ctype: str, raw: bytes):
        if ctype == "application/json":
            return json.loads(raw.decode("utf-8")) if raw else None
        return raw

    def get(self, path: str, timeout: float = 30.0):
        """GET path; JSON answers are decoded, anything else comes back as bytes. Raises on HTTP errors."""
        status, ctype, raw = self._request("GET", path, timeout=timeout)
        if status >= 400:
            raise ComfyServerError(f"GET {path}: HTTP {status}: {raw[:2000]!r}")
        return self._decode(ctype, raw)

    def post(self, path: str, body=None, timeout: float = 30.0):
        status, ctype, raw = self._request("POST", path, body if body is not None else {}, timeout=timeout)
        if status >= 400:
            raise ComfyServerError(f"POST {path}: HTTP {status}: {raw[:2000]!r}")
        return self._decode(ctype, raw)

    def system_stats(self) -> dict:
        return self.get("/system_stats")

    def object_info(self, node_class: str | None = None) -> dict:
        """All node definitions, or {node_class: definition} for one ({} when unknown)."""
        if node_class is None:
            return self.get("/object_info", timeout=120)
        return self.get("/object_info/" + urllib.parse.quote(node_class, safe=""))

    def queue(self, prompt: dict, extra_data: dict | None = None) -> str:
        """POST an API-format graph; returns its prompt_id. Raises PromptError when ComfyUI refuses it."""
        body = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        status, ctype, raw = self._request("POST", "/prompt", body)
        answer = self._decode(ctype, raw)
        if status >= 400 or not isinstance(answer, dict) or "prompt_id" not in answer:
            detail = json.dumps(answer)[:4000] if answer is not None else repr(raw[:4000])
            raise PromptError(f"POST /prompt: HTTP {status}: {detail}", answer)
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The /history entry of a finished prompt (success, error or interrupted), else None."""
        return self.get("/history/" + urllib.parse.quote(prompt_id, safe="")).get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300.0, poll: float = 0.25) -> dict:
        """Wait until the prompt has finished; returns its /history entry (check entry["status"])."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None:  # ComfyUI adds the entry when the prompt has finished
                return entry
            if not self.alive():
                raise ComfyServerError(f"ComfyUI exited while running {prompt_id}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(poll)

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        """queue() then wait()."""
        return self.wait(self.queue(prompt), timeout)

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt (only that one when prompt_id is given)."""
        self.post("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    def queue_state(self) -> dict:
        return self.get("/queue")

    @staticmethod
    def status_messages(entry: dict) -> list:
        """The execution messages of a history entry, e.g. [["execution_error", {...}], ...]."""
        return entry.get("status", {}).get("messages", [])
