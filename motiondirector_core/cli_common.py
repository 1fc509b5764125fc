"""What the command line's subcommands share: clean cancel on Ctrl-C, --device, durations, clip sampling."""

import signal
import sys
import threading

from .errors import MotionDirectorError


class CancelOnInterrupt:
    """While active, the first Ctrl-C asks the running job to stop cleanly; a second one aborts at once."""

    def __init__(self, what: str = "the job"):
        self.what, self.requested, self._previous = what, False, None

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nstopping {self.what} at the next step (Ctrl-C again to abort at once)...",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def resolve_device(text: str | None):
    """--device as a torch.device (None: the default device), checked so that a typo is a user error."""
    import torch

    from .models import default_device

    if not text:
        return default_device()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise MotionDirectorError(f"--device {text!r} is not a torch device: use e.g. cuda, cuda:0 or cpu.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MotionDirectorError(f"--device {text}: no CUDA GPU is available here; use --device cpu.")
    return device


def reference_sampling(stride: int | None, fps: float | None) -> dict:
    """stride / fps for reading a clip: 8 fps by default, as training reads videos; a stride given alone, or fps 0,
    takes every stride-th frame instead."""
    if fps == 0 or stride is not None and fps is None:
        return dict(stride=stride or 1, fps=None)
    return dict(stride=stride or 1, fps=8.0 if fps is None else fps)


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def model_files(values) -> dict:
    """model / checkpoint / motion_module / vae of a config or the parsed flags, the ones given."""
    names = ("model", "checkpoint", "motion_module", "vae")
    return {name: getattr(values, name) for name in names if getattr(values, name, None)}


def model_flags(files: dict) -> list[str]:
    return [part for name, value in files.items() for part in (f"--{name.replace('_', '-')}", str(value))]
