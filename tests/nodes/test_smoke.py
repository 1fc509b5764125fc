from tests.nodes.conftest import MODEL_NAME, run_node


def test_pack_registers_nodes(comfy):
    assert "MD_LoadBaseModel" in comfy and "MD_Sample" in comfy


def test_load_and_sample(comfy):
    (pipe,) = run_node(comfy, "MD_LoadBaseModel", model=MODEL_NAME, dtype="auto", device="cpu")
    (frames,) = run_node(comfy, "MD_Sample", pipeline=pipe, prompt="a red circle", seed=0, negative_prompt="",
                         frames=3, width=32, height=32, steps=2, cfg=7.0, scheduler="ddim", noise_prior=0.5)
    assert frames.shape == (3, 32, 32, 3)
