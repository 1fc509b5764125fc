"""The samplers: diffusers schedulers built from a model's own scheduler config."""

import inspect

from .errors import MotionDirectorError

# name -> (diffusers class name, overrides of the model's scheduler config)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}



def make_scheduler(model, name: str):
    """A fresh diffusers scheduler of the named kind, built from the model's own scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise MotionDirectorError(f"scheduler {name!r} is unknown: use one of {', '.join(SCHEDULERS)}.")
    class_name, overrides = SCHEDULERS[name]
    return scheduler_from_config(getattr(diffusers, class_name), model.scheduler_config, **overrides)


def scheduler_from_config(scheduler_class, config: dict, **overrides):
    """Build `scheduler_class` from another scheduler's config, passing only the keys it takes (no warnings)."""
    accepted = inspect.signature(scheduler_class.__init__).parameters
    kept = {k: v for k, v in config.items() if k in accepted}
    return scheduler_class.from_config({**kept, **overrides})
