"""The authors' released LoRA files: layer table, import, folder layouts, and refusal of anything else."""

import os
import pickle

import pytest
import torch
from diffusers import UNet3DConditionModel

from motiondirector_core import lora
from motiondirector_core.families.modelscope import released as legacy
from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.models import FAMILIES, load_model

FAMILY = FAMILIES["modelscope"]
ANCESTOR = {"spatial": "Transformer2DModel", "temporal": "TransformerTemporalModel"}


def authors_order(unet, kind):
    """The layer order of the authors' save code: transformers of one class by registration order, then each
    one's Linear layers (peft-wrapped here) whose path names attn1/ff (spatial) or attn1/attn2/ff (temporal)."""
    wanted = ("attn1", "ff") if kind == "spatial" else ("attn1", "attn2", "ff")
    order = []
    for parent_name, parent in unet.named_modules():
        if ANCESTOR[kind] not in {cls.__name__ for cls in type(parent).__mro__}:  # ours subclass theirs
            continue
        for name, module in parent.named_modules():
            if isinstance(module, lora.LoraLayer) and any(w in name for w in wanted):
                order.append(f"{parent_name}.{name}")
    return order


def write_authors_file(path, unet, kind, names, as_parameters=True):
    """torch.save of [up, down, ...] in the authors' order; several adapters interleave per layer, as their
    nested injection saves them. Their files hold nn.Parameters (the live weights), so do these."""
    states = [lora.adapter_state(unet, name) for name in names]
    flat = []
    for layer in authors_order(unet, kind):
        for state in states:
            for tensor in (state[layer + lora.B_SUFFIX], state[layer + lora.A_SUFFIX]):
                flat.append(torch.nn.Parameter(tensor.clone()) if as_parameters else tensor.clone())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(flat, path)
    return path


def trained_adapter(unet, name, kind, seed, rank=4):
    lora.add_adapter(unet, FAMILY, name, kind, rank=rank)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in lora.adapter_parameters(unet, name):
            param.copy_(torch.randn(param.shape, generator=g) * 0.05)


def run(unet, frames):
    g = torch.Generator().manual_seed(0)
    sample, text = torch.randn(1, 4, frames, 4, 4, generator=g), torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        return unet(sample, torch.tensor([500]), encoder_hidden_states=text).sample


@pytest.fixture(scope="module")
def zeroscope_unet():
    with torch.device("meta"):
        return UNet3DConditionModel(**FAMILY.zeroscope_unet_config)


@pytest.mark.parametrize("which", ["tiny", "zeroscope"])
def test_table_is_the_registration_order_walk(which, tiny_model, zeroscope_unet):
    unet = tiny_model.unet if which == "tiny" else zeroscope_unet
    modules = dict(unet.named_modules())
    counts = {"tiny": {"spatial": 24, "temporal": 50}, "zeroscope": {"spatial": 96, "temporal": 170}}[which]
    for kind in ("spatial", "temporal"):
        table = legacy.module_table(unet.config, kind)
        assert [layer.path for layer in table] == FAMILY.lora_targets(unet, kind)
        assert len(table) == counts[kind]
        for layer in table:
            linear = modules[layer.path]
            assert (layer.in_features, layer.out_features) == (linear.in_features, linear.out_features)
    if which == "zeroscope":
        paths = [layer.path for layer in legacy.module_table(unet.config, "temporal")]
        assert paths[0].startswith("transformer_in.") and paths[-1].startswith("mid_block.")
        assert paths[-11].startswith("up_blocks.3."), "mid_block comes after up_blocks"
        assert [p.rsplit("transformer_blocks.0.", 1)[1] for p in paths[:10]] == list(legacy.TEMPORAL_LINEARS)


def test_authors_order_matches_the_table(tiny_model):
    unet = tiny_model.unet
    for kind in ("spatial", "temporal"):
        lora.add_adapter(unet, FAMILY, kind, kind, rank=2)
        assert authors_order(unet, kind) == [layer.path for layer in legacy.module_table(unet.config, kind)]


@pytest.mark.parametrize("kind", ["temporal", "spatial"])
def test_imported_file_gives_the_same_outputs(kind, tiny_model, tiny_model_dir, tmp_path):
    unet = tiny_model.unet
    trained_adapter(unet, "trained", kind, seed=3)
    lora.set_scales(unet, {"trained": 1.0})
    expected = run(unet, frames=3)
    file = tmp_path / "run" / "checkpoint-default" / kind / "lora" / "300_unet.pt"
    write_authors_file(file, unet, kind, ["trained"])

    (weights,) = legacy.read_legacy_file(file, None, unet.config)
    assert weights.kind == kind and weights.rank == 4 and weights.alpha == 4
    assert weights.metadata["source_format"] == legacy.FORMAT and weights.source == str(file)
    original = lora.adapter_state(unet, "trained")
    assert weights.state.keys() == original.keys()
    assert all(torch.equal(weights.state[k], original[k]) and not weights.state[k].requires_grad for k in original)

    fresh = load_model(tiny_model_dir, dtype="fp32", device="cpu").unet
    lora.load_adapter(fresh, FAMILY, weights, "imported")
    lora.set_scales(fresh, {"imported": 1.0})
    assert torch.equal(run(fresh, frames=3), expected)


def test_multi_clip_spatial_file_holds_one_lora_per_clip(tiny_model, tmp_path):
    unet = tiny_model.unet
    trained_adapter(unet, "clip0", "spatial", seed=1)
    trained_adapter(unet, "clip1", "spatial", seed=2)
    file = write_authors_file(tmp_path / "spatial" / "lora" / "500_unet.pt", unet, "spatial", ["clip0", "clip1"], False)
    assert len(torch.load(file, weights_only=True)) == 2 * 2 * 24

    clips = legacy.read_legacy_file(file, None, unet.config)
    assert [w.metadata["clip"] for w in clips] == ["0", "1"] and clips[0].metadata["clips"] == "2"
    assert clips[1].source == f"{file} (clip 1)"
    for weights, name in zip(clips, ("clip0", "clip1")):
        original = lora.adapter_state(unet, name)
        assert weights.kind == "spatial" and all(torch.equal(weights.state[k], original[k]) for k in original)
    wrong_kind = "holds 48 up/down pairs, but a temporal LoRA for this UNet has 50: the count fits a spatial"
    with pytest.raises(MotionDirectorError, match=wrong_kind):
        legacy.read_legacy_file(file, "temporal", unet.config)


def test_kind_comes_from_the_pair_count_outside_the_authors_folders(tiny_model, tmp_path):
    unet = tiny_model.unet
    trained_adapter(unet, "t", "temporal", seed=1)
    file = write_authors_file(tmp_path / "motion.pt", unet, "temporal", ["t"])
    assert legacy.read_legacy_file(file, None, unet.config)[0].kind == "temporal"


def test_checkpoint_and_run_folder_layouts(tiny_model, tmp_path):
    unet = tiny_model.unet
    trained_adapter(unet, "s", "spatial", seed=1)
    trained_adapter(unet, "t", "temporal", seed=2)
    run_dir = tmp_path / "train_2023-12-01"
    for step in (300, 1000):
        for kind, name in (("spatial", "s"), ("temporal", "t")):
            write_authors_file(run_dir / f"checkpoint-{step}" / kind / "lora" / f"{step}_unet.pt", unet, kind, [name])
    (run_dir / "cached_latents").mkdir()
    torch.save({"latents": torch.zeros(4, 2, 4, 4)}, run_dir / "cached_latents" / "cached_0.pt")

    found = legacy.find_legacy_files(run_dir)
    assert found == {k: run_dir / "checkpoint-1000" / k / "lora" / "1000_unet.pt" for k in ("spatial", "temporal")}
    checkpoint = run_dir / "checkpoint-300"
    assert legacy.find_legacy_files(checkpoint)["temporal"] == checkpoint / "temporal" / "lora" / "300_unet.pt"
    assert legacy.find_legacy_files(checkpoint / "temporal") == {"temporal": checkpoint / "temporal/lora/300_unet.pt"}
    assert legacy.find_legacy_files(checkpoint / "spatial/lora") == {"spatial": checkpoint / "spatial/lora/300_unet.pt"}

    default = run_dir / "checkpoint-default" / "temporal" / "lora" / "default_unet.pt"
    write_authors_file(default, unet, "temporal", ["t"])
    assert legacy.find_legacy_files(run_dir) == {"temporal": default}
    final = write_authors_file(run_dir / "temporal" / "lora" / "1200_unet.pt", unet, "temporal", ["t"])
    assert legacy.find_legacy_files(run_dir) == {"temporal": final}, "the final save sits at the run's top level"
    assert legacy.find_legacy_files(tmp_path / "empty") == {}

    torch.save([], checkpoint / "temporal" / "lora" / "400_unet.pt")
    with pytest.raises(MotionDirectorError, match="several UNet LoRA files"):
        legacy.find_legacy_files(checkpoint)


def test_wrong_pair_count_is_refused(tiny_model, tmp_path):
    unet = tiny_model.unet
    trained_adapter(unet, "t", "temporal", seed=1)
    file = write_authors_file(tmp_path / "temporal" / "lora" / "1_unet.pt", unet, "temporal", ["t"])
    torch.save(torch.load(file, weights_only=True)[:-2], file)
    with pytest.raises(MotionDirectorError, match=r"1_unet\.pt holds 49 up/down pairs, but a temporal LoRA .* has 50"):
        legacy.read_legacy_file(file, None, unet.config)

    trained_adapter(unet, "s", "spatial", seed=2)
    misplaced = write_authors_file(tmp_path / "temporal" / "lora" / "2_unet.pt", unet, "spatial", ["s"])
    with pytest.raises(MotionDirectorError, match="the count fits a spatial LoRA"):
        legacy.read_legacy_file(misplaced, None, unet.config)


def test_wrong_shape_is_refused(tiny_model, tmp_path):
    unet = tiny_model.unet
    trained_adapter(unet, "s", "spatial", seed=1)
    file = write_authors_file(tmp_path / "spatial" / "lora" / "1_unet.pt", unet, "spatial", ["s"])
    tensors = torch.load(file, weights_only=True)
    tensors[9] = torch.zeros(4, 33)  # pair 4 = ff.net.0.proj of the first transformer: down is (4, 32)
    torch.save(tensors, file)
    layer = "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj"
    expected = rf"1_unet\.pt does not fit .*pair 4 \({layer}\): up \(256, 4\) down \(4, 33\)"
    with pytest.raises(MotionDirectorError, match=expected):
        legacy.read_legacy_file(file, None, unet.config)


def test_other_contents_are_refused(tiny_model, tmp_path):
    config = tiny_model.unet.config
    cases = {
        "dict": ({"up": torch.zeros(2, 2)}, "holds a dict"),
        "tensor": (torch.zeros(2, 2), "holds a Tensor"),
        "strings": (["up", "down"], "item 0 is a str"),
        "ints": ([torch.zeros(2, 2, dtype=torch.long)] * 2, "item 0 is a torch.int64 tensor"),
        "odd": ([torch.zeros(2, 2)] * 3, "an odd number"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / f"{name}.pt")
        with pytest.raises(MotionDirectorError, match=message):
            legacy.read_legacy_file(tmp_path / f"{name}.pt", "spatial", config)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(MotionDirectorError, match=r"junk\.pt is not a readable PyTorch file .*Unsupported operand"):
        legacy.read_legacy_file(tmp_path / "junk.pt", "spatial", config)
    with pytest.raises(MotionDirectorError, match="does not exist"):
        legacy.read_legacy_file(tmp_path / "missing.pt", "spatial", config)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [None, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_that_runs_code_is_refused(protocol, tiny_model, tmp_path):
    marker = tmp_path / "code_ran"
    file = tmp_path / "temporal" / "lora" / "300_unet.pt"
    file.parent.mkdir(parents=True)
    payload = [torch.zeros(2, 2), RunsCode(marker)]
    if protocol is None:
        torch.save(payload, file)
    else:
        with open(file, "wb") as handle:
            pickle.dump(payload, handle, protocol=protocol)
    # torch's safe unpickler names the blocked global, unless it stops earlier at an opcode it does not take.
    refusal = r"refused to load .*300_unet\.pt: it holds Python objects"
    if protocol == pickle.HIGHEST_PROTOCOL:
        refusal = "not a readable"
    with pytest.raises(MotionDirectorError, match=refusal):
        legacy.read_legacy_file(file, None, tiny_model.unet.config)
    assert not marker.exists()
    if protocol is None:
        torch.load(file, weights_only=False)
    else:
        with open(file, "rb") as handle:
            pickle.load(handle)
    assert marker.exists(), "the payload does run code when unpickled naively"


def test_unet_config_must_be_a_unet3d(tiny_model):
    config = dict(tiny_model.unet.config)
    with pytest.raises(MotionDirectorError, match="has no 'layers_per_block'"):
        legacy.module_table({k: v for k, v in config.items() if k != "layers_per_block"}, "spatial")
    config["down_block_types"] = ["CrossAttnDownBlock2D", "DownBlock2D"]
    with pytest.raises(MotionDirectorError, match="not the ModelScope / ZeroScope UNet3D layout"):
        legacy.module_table(config, "spatial")
    with pytest.raises(MotionDirectorError, match="spatial or temporal, not 'coupled'"):
        legacy.module_table(tiny_model.unet.config, "coupled")
