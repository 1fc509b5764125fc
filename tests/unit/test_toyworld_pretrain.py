import importlib.util
import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from motiondirector_core.errors import MotionDirectorError
from motiondirector_core.toyworld import architecture
from motiondirector_core.toyworld.caption_eval import direction, moves_opposite, parse_caption, read_clip, score
from motiondirector_core.toyworld.clips import COLOURS, HELD_OUT_MOTIONS, MOTIONS, PRETRAIN_MOTIONS, SHAPES, caption
from motiondirector_core.toyworld.clips import make_clip
from motiondirector_core.toyworld.dataset import ToyDataset
from motiondirector_core.toyworld.pretrain import PretrainConfig, pretrain, step_captions
from motiondirector_core.toyworld.pretrain_state import load_checkpoint
from motiondirector_core.toyworld.vocab import caption_words, learn_merges, load_tokenizer, write_tokenizer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_tokenizer(write_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer", max_length=16))


# ---- tokenizer -------------------------------------------------------------------------------------------


def test_every_caption_round_trips_with_one_token_per_word(tokenizer):
    assert tokenizer.model_max_length == 16
    for shape in SHAPES:
        for colour in COLOURS:
            for motion in MOTIONS:
                text = caption(shape, colour, motion)
                ids = tokenizer(text).input_ids
                assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
                assert len(ids) == len(text.split()) + 2, text
                assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_caption_words_are_distinct_tokens_and_other_text_still_tokenizes(tokenizer):
    ids = {word: tokenizer(word).input_ids[1:-1] for word in caption_words()}
    assert all(len(v) == 1 for v in ids.values())
    assert len({v[0] for v in ids.values()}) == len(ids)
    assert {"zigzag", "orbiting", "bouncing", "zooming", "triangle", "purple"} <= set(ids)
    assert tokenizer.decode(tokenizer("A Pink hexagon").input_ids, skip_special_tokens=True) == "a pink hexagon"
    padded = tokenizer([""], padding="max_length", max_length=16).input_ids[0]
    assert padded == [tokenizer.bos_token_id] + [tokenizer.eos_token_id] * 15


def test_merges_rebuild_every_word_and_bad_words_are_refused():
    merges = learn_merges(["red", "green", "reed"])
    assert merges[0] == ("r", "e")  # in all three words: the most frequent pair comes first
    assert {"red</w>", "green</w>", "reed</w>"} <= {a + b for a, b in merges}
    assert len(merges) == len(set(merges))
    with pytest.raises(MotionDirectorError, match="lower-case"):
        learn_merges(["Red"])
    with pytest.raises(MotionDirectorError, match="max_length"):
        write_tokenizer("unused", max_length=2)


# ---- dataset ---------------------------------------------------------------------------------------------


def test_dataset_is_deterministic_given_its_seed():
    a, b, c = ToyDataset(variants=2, seed=3), ToyDataset(variants=2, seed=3), ToyDataset(variants=2, seed=4)
    assert len(a) == len(SHAPES) * len(COLOURS) * len(PRETRAIN_MOTIONS) * 2 * 2
    assert a.specs == b.specs and a.specs != c.specs
    picks = [0, 7, len(a) - 1]
    assert torch.equal(a.render(picks), b.render(picks))
    assert not torch.equal(a.render(picks), c.render(picks))
    assert a.render(picks).dtype == torch.uint8 and a.render(picks).shape == (3, 8, 32, 32, 3)
    assert [x.tolist() for x in a.batches(4, steps=3)] == [x.tolist() for x in b.batches(4, steps=3)]
    assert a.batch(4, 1).tolist() == list(a.batches(4, steps=2, start=1))[0].tolist()
    assert a.batch(4, 1).tolist() != a.batch(4, 2).tolist()


def test_dataset_holds_only_pretraining_motions_and_refuses_held_out_ones():
    data = ToyDataset(variants=1)
    assert {s.motion for s in data.specs} == set(PRETRAIN_MOTIONS)
    assert not any(m in text for text in data.captions for m in ("zigzag", "orbiting", "bouncing", "zooming"))
    assert {s.shape for s in data.specs} == set(SHAPES) and {s.colour for s in data.specs} == set(COLOURS)
    for motion in HELD_OUT_MOTIONS:
        with pytest.raises(MotionDirectorError, match="held-out"):
            ToyDataset(motions=("left", motion))
    with pytest.raises(MotionDirectorError, match="variants"):
        ToyDataset(variants=0)


def test_foreground_marks_the_shape():
    data = ToyDataset(variants=1)
    index = next(i for i, s in enumerate(data.specs) if s.background == "textured")
    pixels = data.render([index])
    mask = data.foreground(pixels, [index])[0]
    clip = data.clip(index)
    x, y = clip.centres[0]
    assert mask[0, int(y), int(x)] > 0.9 and mask[0, 1, 1] < 0.1


# ---- caption evaluation ----------------------------------------------------------------------------------


def test_reading_rendered_clips_gives_their_captions():
    for i, (shape, colour, motion) in enumerate(
        (s, c, m) for s in SHAPES for c in COLOURS for m in PRETRAIN_MOTIONS if hash((s, c, m)) % 5 == 0
    ):
        clip = make_clip(32, 8, shape, colour, motion, ("plain", "textured")[i % 2], seed=i)
        assert score(clip.caption, read_clip(clip.frames))["all"], clip.caption


def test_reading_an_empty_clip_finds_nothing_and_scores_wrong():
    reading = read_clip(torch.full((4, 32, 32, 3), 0.2))
    assert not reading.found and not score("a red circle moving left", reading)["all"]
    with pytest.raises(MotionDirectorError, match="frames, height, width, 3"):
        read_clip(torch.zeros(32, 32, 3))


def test_a_pair_of_opposite_words_counts_only_when_the_clips_move_opposite_ways():
    def reading(motion, seed=0, shape="circle"):
        return read_clip(make_clip(32, 8, shape, "red", motion, seed=seed).frames)

    assert moves_opposite("left", reading("left"), reading("right", seed=1))
    assert moves_opposite("down", reading("down"), reading("up", shape="square"))
    assert not moves_opposite("left", reading("left"), reading("left", seed=1))  # the word ignored
    assert not moves_opposite("up", reading("up"), reading("static"))  # the twin stands still
    assert not moves_opposite("right", reading("right"), reading("up"))  # the twin moves on the other axis
    assert not moves_opposite("left", reading("left"), read_clip(torch.full((8, 32, 32, 3), 0.2)))  # nothing found


def test_helpers_direction_and_caption_parsing():
    assert [direction(*d) for d in ((0.3, 0.0), (-0.3, 0.1), (0.0, -0.2), (0.05, 0.3), (0.02, -0.03))] == [
        "right", "left", "up", "down", "static"]
    assert parse_caption("an orange triangle zooming in") == ("triangle", "orange", "zoom in")
    from motiondirector_core.toyworld.clips import COLOURS, MOTIONS, SHAPES, caption

    for shape in SHAPES:
        for colour in COLOURS:
            for motion in MOTIONS:
                assert parse_caption(caption(shape, colour, motion)) == (shape, colour, motion)
    for loose in ("a dog running", "a red circle moving left quickly", "red circle left"):
        with pytest.raises(MotionDirectorError, match="small-world caption"):
            parse_caption(loose)


# ---- the model and its pretraining -----------------------------------------------------------------------


def test_architecture_is_small():
    unet, vae = architecture.build_unet(), architecture.build_vae()
    assert 3e6 < architecture.parameter_count(unet) < 7e6
    assert architecture.parameter_count(vae) < 1.5e6
    assert 2 ** (len(vae.config.block_out_channels) - 1) == 8 and vae.config.latent_channels == 16
    assert unet.config.in_channels == unet.config.out_channels == 16
    assert architecture.parameter_count(architecture.build_vae(4, 4)) < architecture.parameter_count(vae)


def load_script():
    spec = importlib.util.spec_from_file_location("pretrain_toyworld", REPO / "scripts" / "pretrain_toyworld.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 2-step run of every stage through the script, with the VAE stage run on its own first (resume)."""
    root = tmp_path_factory.mktemp("pretrain")
    script = load_script()
    common = ["--out", str(root / "model"), "--work", str(root / "work"), "--threads", "1", "--variants", "1",
              "--vae-steps", "2", "--vae-batch", "4", "--steps", "2", "--batch", "2", "--eval-prompts", "2",
              "--eval-seeds", "1"]
    assert script.main(common + ["--stages", "vae"]) == 0
    assert (root / "work" / "vae" / "config.json").is_file() and not (root / "model").exists()
    assert script.main(common) == 0
    return root


def test_two_step_pretrain_loads_with_load_model_and_samples(pretrained):
    from motiondirector_core.models import load_model
    from motiondirector_core.sample import SampleSettings, generate

    folder = pretrained / "model"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "TextToVideoSDPipeline"
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 20 * 2**20
    model = load_model(folder, dtype="fp32", device="cpu")
    assert model.vae_factor == 8 and model.max_prompt_tokens == 16
    assert model.scheduler_config["prediction_type"] == "v_prediction"
    assert model.latent_scale != 1.0  # set from the toy world's latents
    video = generate(model, SampleSettings(prompt="a red circle moving left", frames=8, width=32, height=32, steps=2))
    assert video.shape == (8, 32, 32, 3) and torch.isfinite(video).all()


def test_pretrain_logs_every_stage_and_records_the_caption_eval(pretrained):
    work = pretrained / "work"
    records = [json.loads(line) for line in (work / "pretrain_log.jsonl").read_text().splitlines()]
    # the first run did the VAE alone; the second reused it and did the rest
    done = [r["stage"] for r in records if r.get("event") == "done"]
    assert done == ["vae", "vae", "latents", "unet", "save", "eval"]
    assert [r["step"] for r in records if r.get("stage") == "unet" and "step" in r] == [1, 2]
    info = json.loads((pretrained / "model" / "toyworld.json").read_text())
    assert info["native"] == {"size": 32, "frames": 8, "fps": 8}
    assert info["pretrain"]["unet_steps"] == 2 and info["caption_eval"]["samples"] == 2
    assert (work / "caption_eval.json").is_file() and (work / "caption_eval.png").is_file()
    # the second caption moves ("... moving left"), so it was also sampled with "right" and the pair is scored
    samples = json.loads((work / "caption_eval.json").read_text())["samples"]
    assert samples[1]["prompt"].endswith("moving left") and isinstance(samples[1]["opposite_word"], bool)
    assert "opposite_word" not in samples[0]  # standing still has no opposite
    assert info["caption_eval"]["opposite_word"] == float(samples[1]["opposite_word"])


def test_a_finished_stage_is_reused_and_other_settings_are_refused(pretrained, capsys):
    work = pretrained / "work"
    before = (work / "unet_checkpoint.pt").stat().st_mtime_ns
    pretrain(PretrainConfig(out=pretrained / "model", work=work, variants=1, vae_steps=2, vae_batch=4,
                            unet_steps=2, batch=2, stages=("vae", "unet")), printer=print)
    assert "reusing" in capsys.readouterr().out
    assert (work / "unet_checkpoint.pt").stat().st_mtime_ns == before
    with pytest.raises(MotionDirectorError, match="other settings"):
        pretrain(PretrainConfig(out=pretrained / "model", work=work, variants=1, vae_steps=2, vae_batch=4,
                                batch=3, stages=("vae",)))


def test_save_refuses_an_unfinished_unet_stage_and_bad_stages(tmp_path):
    with pytest.raises(MotionDirectorError, match="stages"):
        PretrainConfig(stages=("vae", "finetune"))
    with pytest.raises(MotionDirectorError, match="run the 'unet' stage"):
        pretrain(PretrainConfig(out=tmp_path / "m", work=tmp_path / "w", variants=1, stages=("save",)))


def test_the_pretrained_folder_works_with_every_scheduler_inversion_and_lora_training(pretrained, tmp_path):
    from motiondirector_core.clips import Clip
    from motiondirector_core.invert import ddim_invert
    from motiondirector_core.models import load_model
    from motiondirector_core.sample import SCHEDULERS, SampleSettings, generate
    from motiondirector_core.train import train
    from motiondirector_core.train_config import TrainConfig

    model = load_model(pretrained / "model", dtype="fp32", device="cpu")
    for name in SCHEDULERS:
        settings = SampleSettings(prompt="a blue square moving up", frames=8, width=32, height=32, steps=3,
                                  scheduler=name)
        assert torch.isfinite(generate(model, settings)).all(), name
    clip = make_clip(32, 8, "square", "red", "zigzag")
    z_inv = ddim_invert(model, model.encode_frames(clip.frames), steps=3)
    side = 32 // architecture.LATENT_FACTOR
    assert z_inv.shape == (1, architecture.LATENT_CHANNELS, 8, side, side) and torch.isfinite(z_inv).all()
    config = TrainConfig(output=str(tmp_path / "lora"), steps=2, rank=4, width=32, height=32, frames=8,
                         checkpoint_every=0)
    assert train(model, [Clip(clip.frames, clip.caption, source="zigzag.mp4")], config).steps == 2


def test_a_time_budget_sets_the_unet_steps(pretrained, tmp_path, monkeypatch):
    from motiondirector_core.toyworld import pretrain as module

    work = tmp_path / "work"
    for name in ("tokenizer", "vae"):
        shutil.copytree(pretrained / "work" / name, work / name)
    for name in ("config.json", "latents.pt"):
        shutil.copy(pretrained / "work" / name, work / name)
    monkeypatch.setattr(module, "CALIBRATION_STEPS", 1)
    config = PretrainConfig(out=tmp_path / "model", work=work, variants=1, vae_steps=2, vae_batch=4, batch=2,
                            unet_steps=50, minutes=0.01, stages=("unet", "save"))
    pretrain(config, printer=lambda line: None)
    records = [json.loads(line) for line in (work / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["total"] for r in records if r.get("event") == "budget"] == [2]  # no time left: one more step
    assert json.loads((tmp_path / "model" / "toyworld.json").read_text())["pretrain"]["unet_steps"] == 2


def test_the_budget_is_set_again_from_the_wall_time_of_the_steps_so_far(pretrained, tmp_path, monkeypatch):
    from motiondirector_core.toyworld import pretrain as module

    work = tmp_path / "work"
    for name in ("tokenizer", "vae"):
        shutil.copytree(pretrained / "work" / name, work / name)
    for name in ("config.json", "latents.pt"):
        shutil.copy(pretrained / "work" / name, work / name)
    monkeypatch.setattr(module, "CALIBRATION_STEPS", 1)
    monkeypatch.setattr(module, "RECALIBRATE_EVERY", 3)
    monkeypatch.setattr(module, "BUDGET_RESERVE_S", 0.0)
    config = PretrainConfig(out=tmp_path / "model", work=work, variants=1, vae_steps=2, vae_batch=4, batch=2,
                            unet_steps=100000, minutes=0.1, stages=("unet",))
    began = time.time()
    pretrain(config, printer=lambda line: None)
    seconds = time.time() - began
    records = [json.loads(line) for line in (work / "pretrain_log.jsonl").read_text().splitlines()]
    budgets = [r for r in records if r.get("event") == "budget"]
    steps = [r["step"] for r in records if r.get("stage") == "unet" and "step" in r and "loss" in r]
    assert [b["step"] for b in budgets][:3] == [1, 3, 6] and len(budgets) >= 3
    assert steps[-1] == budgets[-1]["total"]
    assert seconds < 6.0 + 3.0, "the run keeps to its 6-second budget (give or take a step and the set-up)"


def test_extend_trains_a_finished_unet_on_with_a_warm_restart(pretrained, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(pretrained / "work", work)
    common = dict(out=tmp_path / "model", work=work, variants=1, vae_steps=2, vae_batch=4, batch=2,
                  stages=("unet", "save"))
    pretrain(PretrainConfig(unet_steps=4, **common), printer=lambda line: None)  # without extend: reused as is
    records = [json.loads(line) for line in (work / "pretrain_log.jsonl").read_text().splitlines()]
    assert not any(r.get("event") == "extend" for r in records)
    assert json.loads((tmp_path / "model" / "toyworld.json").read_text())["pretrain"]["unet_steps"] == 2

    pretrain(PretrainConfig(unet_steps=4, extend=True, **common), printer=lambda line: None)
    records = [json.loads(line) for line in (work / "pretrain_log.jsonl").read_text().splitlines()]
    assert [(r["from"], r["to"]) for r in records if r.get("event") == "extend"] == [(2, 4)]
    steps = [r for r in records if r.get("stage") == "unet" and "step" in r]
    assert [(r["step"], r["total"]) for r in steps][-3:] == [(2, 2), (3, 4), (4, 4)]
    pretrain_info = json.loads((tmp_path / "model" / "toyworld.json").read_text())["pretrain"]
    assert pretrain_info["unet_steps"] == 4 and pretrain_info["extended_from"] == [2]


def test_a_factor_4_vae_gives_8x8_latents_and_a_model_that_loads_samples_and_trains(tmp_path):
    from motiondirector_core.clips import Clip
    from motiondirector_core.models import load_model
    from motiondirector_core.sample import SampleSettings, generate
    from motiondirector_core.train import train
    from motiondirector_core.train_config import TrainConfig

    script = load_script()
    assert script.main(["--out", str(tmp_path / "model"), "--work", str(tmp_path / "work"), "--threads", "1",
                        "--latent-factor", "4", "--latent-channels", "4", "--variants", "1", "--vae-steps", "2",
                        "--vae-batch", "4", "--steps", "2", "--batch", "2", "--eval-prompts", "1",
                        "--eval-seeds", "1"]) == 0
    assert load_checkpoint(tmp_path / "work" / "latents.pt")["latents"].shape[1:] == (4, 8, 8, 8)
    info = json.loads((tmp_path / "model" / "toyworld.json").read_text())["pretrain"]
    assert (info["latent_factor"], info["latent_channels"]) == (4, 4)
    model = load_model(tmp_path / "model", dtype="fp32", device="cpu")
    assert model.vae_factor == 4 and model.unet.config.in_channels == 4
    video = generate(model, SampleSettings(prompt="a red circle moving left", frames=8, width=32, height=32, steps=2))
    assert video.shape == (8, 32, 32, 3) and torch.isfinite(video).all()
    clip = make_clip(32, 8, "square", "red", "zigzag")
    config = TrainConfig(output=str(tmp_path / "lora"), steps=2, rank=4, width=32, height=32, frames=8,
                         checkpoint_every=0)
    assert train(model, [Clip(clip.frames, clip.caption, source="zigzag.mp4")], config).steps == 2


def test_latent_settings_are_checked_and_older_work_folders_read_as_factor_4(pretrained, tmp_path):
    with pytest.raises(MotionDirectorError, match="latent_factor must be 4 or 8"):
        PretrainConfig(latent_factor=2)
    with pytest.raises(MotionDirectorError, match="multiple of 8"):
        PretrainConfig(latent_factor=8, size=36)
    with pytest.raises(MotionDirectorError, match="latent_channels"):
        PretrainConfig(latent_channels=0)
    work = tmp_path / "work"
    shutil.copytree(pretrained / "work", work)
    held = json.loads((work / "config.json").read_text())
    for key in ("latent_factor", "latent_channels"):  # a work folder from before the option
        del held[key]
    (work / "config.json").write_text(json.dumps(held))
    common = dict(out=tmp_path / "model", work=work, variants=1, vae_steps=2, vae_batch=4, batch=2, unet_steps=2,
                  stages=("vae",))
    pretrain(PretrainConfig(latent_factor=4, latent_channels=4, **common), printer=lambda line: None)  # accepted
    with pytest.raises(MotionDirectorError, match="latent_factor: 4 -> 8, latent_channels: 4 -> 16"):
        pretrain(PretrainConfig(**common), printer=lambda line: None)  # today's defaults are another run


def test_colour_dropout_names_the_shape_alone_in_that_share_of_the_captions():
    named, shape_only, empty = torch.arange(4000) % 7, 100 + torch.arange(4000) % 3, 999
    for caption_dropout, colour_dropout in ((0.1, 0.0), (0.1, 0.3), (0.0, 1.0)):
        cfg = PretrainConfig(caption_dropout=caption_dropout, colour_dropout=colour_dropout)
        ids = step_captions(named, shape_only, empty, cfg, torch.Generator().manual_seed(0))
        kept = ids != empty
        assert abs((~kept).float().mean() - caption_dropout) < 0.02
        unnamed = (ids == shape_only) & kept
        assert abs(unnamed[kept].float().mean() - colour_dropout) < 0.03
        assert torch.equal(ids[kept & ~unnamed], named[kept & ~unnamed])
    with pytest.raises(MotionDirectorError, match="colour_dropout must be a share between 0 and 1"):
        PretrainConfig(colour_dropout=1.5)


def test_a_vae_taken_from_a_model_is_reused_and_its_settings_are_checked(pretrained, tmp_path):
    from diffusers import AutoencoderKL

    source = pretrained / "model"
    script = load_script()
    common = ["--out", str(tmp_path / "model"), "--work", str(tmp_path / "work"), "--threads", "1", "--variants",
              "1", "--vae-steps", "2", "--vae-batch", "4", "--steps", "2", "--batch", "2", "--eval-prompts", "1",
              "--eval-seeds", "1", "--colour-dropout", "0.5"]
    assert script.main(common + ["--vae-from", str(source)]) == 0
    records = [json.loads(line) for line in (tmp_path / "work" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["from"] for r in records if r.get("event") == "copied"] == [str(source)]
    assert not any(r.get("stage") == "vae" and "step" in r for r in records)  # no VAE step was trained
    copied = AutoencoderKL.from_pretrained(tmp_path / "model" / "vae").state_dict()
    for name, weight in AutoencoderKL.from_pretrained(source / "vae").state_dict().items():
        assert torch.equal(copied[name], weight), name
    info = json.loads((tmp_path / "model" / "toyworld.json").read_text())["pretrain"]
    assert info["vae_from"] == str(source) and info["colour_dropout"] == 0.5

    with pytest.raises(MotionDirectorError, match="vae_steps: 2 there, 3 here"):
        pretrain(PretrainConfig(out=tmp_path / "m2", work=tmp_path / "w2", variants=1, vae_steps=3, vae_batch=4,
                                vae_from=source, stages=("vae",)), printer=lambda line: None)
    with pytest.raises(MotionDirectorError, match="not a small-world model folder"):
        pretrain(PretrainConfig(out=tmp_path / "m3", work=tmp_path / "w3", variants=1, vae_from=tmp_path,
                                stages=("vae",)), printer=lambda line: None)


def test_a_frozen_text_encoder_is_taken_from_a_model_and_checked(pretrained, tmp_path):
    from transformers import CLIPTextModel

    source = pretrained / "model"
    script = load_script()
    common = ["--out", str(tmp_path / "model"), "--work", str(tmp_path / "work"), "--threads", "1", "--variants",
              "1", "--vae-steps", "2", "--vae-batch", "4", "--steps", "2", "--batch", "2", "--eval-prompts", "1",
              "--eval-seeds", "1"]
    assert script.main(common + ["--vae-from", str(source), "--text-encoder-from", str(source)]) == 0
    # the saved encoder is the source's, bit for bit, and so is the tokenizer: the UNet alone trained
    saved = CLIPTextModel.from_pretrained(tmp_path / "model" / "text_encoder").state_dict()
    for name, weight in CLIPTextModel.from_pretrained(source / "text_encoder").state_dict().items():
        assert torch.equal(saved[name], weight), name
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "model" / "tokenizer" / name).read_bytes() == (source / "tokenizer" / name).read_bytes()
    state = load_checkpoint(tmp_path / "work" / "unet_checkpoint.pt")
    unet_count = sum(1 for _ in architecture.build_unet().parameters())
    assert len(state["ema"]) == unet_count  # no averaged copy of a frozen encoder
    info = json.loads((tmp_path / "model" / "toyworld.json").read_text())["pretrain"]
    assert info["text_encoder_from"] == str(source)
    # a run with its own encoder records none, and its work folder will not resume a frozen-encoder run
    assert json.loads((source / "toyworld.json").read_text())["pretrain"]["text_encoder_from"] is None
    with pytest.raises(MotionDirectorError, match="text_encoder_from: .* -> None"):
        pretrain(PretrainConfig(out=tmp_path / "model", work=tmp_path / "work", variants=1, vae_steps=2,
                                vae_batch=4, unet_steps=2, batch=2, stages=("unet",)), printer=lambda line: None)


def test_a_text_encoder_source_without_the_caption_words_is_refused(pretrained, tmp_path):
    with pytest.raises(MotionDirectorError, match="has no text_encoder/ and tokenizer/"):
        pretrain(PretrainConfig(out=tmp_path / "m", work=tmp_path / "w", variants=1, text_encoder_from=tmp_path,
                                stages=("unet",)), printer=lambda line: None)
    other = tmp_path / "other"
    shutil.copytree(pretrained / "model", other)
    write_tokenizer(other / "tokenizer", max_length=16, words=["a", "red", "circle"])
    with pytest.raises(MotionDirectorError, match="does not read .* as one token each"):
        pretrain(PretrainConfig(out=tmp_path / "m2", work=tmp_path / "w2", variants=1, text_encoder_from=other,
                                stages=("unet",)), printer=lambda line: None)
    assert not (tmp_path / "w2" / "tokenizer").exists()
