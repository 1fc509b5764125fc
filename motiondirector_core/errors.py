"""Errors a user can act on: the CLI prints their message alone, nodes show it as is."""


class MotionDirectorError(Exception):
    """A bad input or state, with a message that names it and says what to do."""


class Cancelled(MotionDirectorError):
    """The caller asked to stop (ComfyUI cancel, Ctrl-C); saved checkpoints are kept."""
