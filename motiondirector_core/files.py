"""Atomic writes: a crash mid-save leaves the previous file (or none), never a truncated one."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import MotionDirectorError


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
