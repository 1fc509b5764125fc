"""MotionDirector core: motion customization of text-to-video diffusion models, without ComfyUI."""

__version__ = "0.1.0"
