"""Weight files: atomic writes (a crash mid-save leaves the previous file, or none, never a truncated one), and
reads that never run pickled code."""

import contextlib
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path

from .errors import MotionDirectorError

UNFINISHED_SAVE = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # tempfile's names for atomic_path / atomic_dir


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it is renamed onto `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise MotionDirectorError(f"cannot write to {path.parent} ({exc.strerror}): choose a writable folder.") from exc
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise MotionDirectorError(f"could not save {path} ({exc.strerror}); the previous file, if any, is intact.") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside `path`; on success it replaces `path` as a whole."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise MotionDirectorError(f"cannot write to {path.parent} ({exc.strerror}): choose a writable folder.") from exc
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        raise MotionDirectorError(f"could not save {path} ({exc.strerror}); earlier checkpoints are intact.") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_interrupted_saves(folder: str | Path) -> list[str]:
    """Undo what a process killed inside `atomic_dir` / `atomic_path` left in `folder`; returns what was done.

    A half-written `.NAME.<8 random characters>.tmp` is deleted; a `.NAME.old` folder whose NAME is gone (killed
    between the two renames that replace a folder) is put back, so a kill at any moment loses at most the save that
    was under way. Only names of that exact form are touched.
    """
    folder = Path(folder)
    done = []
    if not folder.is_dir():
        return done
    for child in sorted(folder.iterdir()):
        name = child.name
        if UNFINISHED_SAVE.fullmatch(name):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
            done.append(f"removed the unfinished save {name}")
        elif name.startswith(".") and name.endswith(".old") and len(name) > 5 and child.is_dir():
            original = folder / name[1:-4]
            if original.exists():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
                done.append(f"removed {name}, already replaced by {original.name}")
            else:
                os.replace(child, original)
                done.append(f"restored {original.name} from {name}")
    return done


def write_text(path: str | Path, text: str) -> Path:
    """`text` to `path` as UTF-8, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: str | Path, data) -> Path:
    """`data` as indented JSON (non-ASCII kept) to `path`, atomically."""
    import json

    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_safetensors(path: str | Path, tensors: dict, metadata: dict) -> Path:
    """Tensors (made contiguous) and string metadata to a safetensors file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_path(path) as tmp:
        contiguous = {k: v.contiguous() for k, v in tensors.items()}
        save_file(contiguous, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return path


def read_safetensors(path: str | Path, fix: str) -> tuple[dict, dict[str, str]]:
    """(tensors, metadata) of a safetensors file; an unreadable file is a MotionDirectorError ending in `fix`."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as exc:
        raise MotionDirectorError(f"{path} is not a readable safetensors file ({exc}); {fix}") from exc


def load_weights_only(path: str | Path):
    """A `.pt` / `.ckpt` / `.bin` file's tensors (a list or a dict of them) by torch's weights-only unpickler:
    a file that holds other Python objects, which could run code when loaded, is refused."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch wraps the reason in boilerplate; the line that names it is the one worth showing.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), type(exc).__name__)
        if "GLOBAL" in reason:
            raise MotionDirectorError(
                f"refused to load {path}: it holds Python objects other than tensors ({reason[:200]}), and loading "
                f"them could run code. Use the original file or a .safetensors one."
            ) from exc
        raise MotionDirectorError(
            f"{path} is not a readable PyTorch file of tensors ({reason[:200]}): it is damaged; re-download it."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a damaged pickle makes torch raise almost any type (IndexError, ...)
        raise MotionDirectorError(
            f"{path} is not a readable PyTorch file ({type(exc).__name__}: {str(exc)[:200]}); re-download it."
        ) from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        return loaded["state_dict"]  # a training checkpoint's wrapper, as Lightning and AnimateDiff write them
    return loaded
