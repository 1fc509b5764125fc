"""MotionDirector for ComfyUI: the node pack's entry point (ComfyUI V3 API)."""


async def comfy_entrypoint():
    """Called by ComfyUI to get the pack's nodes. The import waits until then so that tools which import this
    folder without ComfyUI (pytest, packagers) can, and `motiondirector_core` stays usable on its own."""
    from .nodes import comfy_entrypoint as load_pack

    return await load_pack()
