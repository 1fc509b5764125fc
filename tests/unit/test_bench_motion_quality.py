"""bench/motion_quality.py end to end at toy size (the tiny random model, 2 steps): every variant is trained,
sampled and scored, and the table, JSON and picture are written."""

import json

import pytest
import torch

from tests.fixtures.bench import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("motion_quality")


def test_every_variant_is_trained_sampled_and_scored(bench, tiny_model_dir, tmp_path):
    settings = bench.Settings(motions=("orbit", "zoom in"), steps=2, rank=4, sample_seeds=(0,), sample_steps=2)
    result = bench.run(settings, tmp_path / "runs", tiny_model_dir, printer=lambda line: None)
    assert torch.is_grad_enabled()  # the caller's autograd mode is left as it was
    rows = result["rows"]
    # a second motion trains on the same model; the probes sample the full variant's LoRA, untrained
    assert [r["variant"] for r in rows] == [*bench.VARIANTS, *bench.PROBES] * 2
    assert all(r["samples"] == len(bench.NEW_APPEARANCES) for r in rows)
    assert [r["train_seconds"] > 0 for r in rows] == [False, True, True, True, True, True, False, False] * 2
    for variant, written in (("coupled", ["coupled"]), ("dual", ["spatial", "temporal"]),
                             ("full", ["spatial", "temporal"]), ("temporal", ["temporal"])):
        files = sorted(p.name for p in (tmp_path / "runs" / "orbit" / variant / "final").glob("*.safetensors"))
        assert files == [f"{name}.safetensors" for name in written]
    for row in rows:
        assert -1 <= row["motion_fidelity"] <= 1 and -1 <= row["trajectory_fidelity"] <= 1

    bench.write_results(result, tmp_path / "out", "python bench/motion_quality.py --test", 0.5)
    table = (tmp_path / "out" / "motion_quality.md").read_text()
    assert "python bench/motion_quality.py --test" in table
    per_motion = len(bench.VARIANTS) + len(bench.PROBES)
    assert table.count("| orbit |") == table.count("| zoom in |") == table.count("| all |") == per_motion
    saved = json.loads((tmp_path / "out" / "motion_quality.json").read_text())
    assert saved["rows"][per_motion + 3]["variant"] == "full" and saved["settings"]["steps"] == 2
    from PIL import Image

    width = (1 + len(bench.VARIANTS)) * 8 * 32  # a reference, then a sample of each variant: 8 frames of 32 px
    assert Image.open(tmp_path / "out" / "motion_quality.png").size == (width, 2 * 32)  # x two motions
    assert "| text alignment | prompt's colour | prompt's shape | leakage | leaked colour | leaked shape |" in table
    bench.rewrite_table(tmp_path / "out")  # the same table again from the JSON alone
    assert (tmp_path / "out" / "motion_quality.md").read_text() == table


def test_the_full_motion_lora_is_also_sampled_at_other_strengths(bench, tiny_model_dir, tmp_path):
    settings = bench.Settings(motions=("orbit",), steps=2, rank=4, sample_seeds=(0,), sample_steps=2,
                              variants=("full",), motion_scales=(0.5, 0.0))
    result = bench.run(settings, tmp_path / "runs", tiny_model_dir, printer=lambda line: None)
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == ["full", *bench.PROBES, "full@0.5", "full@0"]
    assert rows["full@0.5"]["train_seconds"] == 0 and rows["full@0.5"]["samples"] == len(bench.NEW_APPEARANCES)
    # a weaker motion LoRA is another video of the same seed, and at 0 it is the base model's
    assert rows["full@0.5"]["per_sample"] != rows["full"]["per_sample"]
    base = bench.run(bench.Settings(motions=("orbit",), steps=2, rank=4, sample_seeds=(0,), sample_steps=2,
                                    variants=("base",)), tmp_path / "base", tiny_model_dir, printer=lambda line: None)
    assert rows["full@0"]["per_sample"] == base["rows"][0]["per_sample"]
    bench.write_results(result, tmp_path / "out", "python bench/motion_quality.py --motion-scales 0.5,0", 0.1)
    table = (tmp_path / "out" / "motion_quality.md").read_text()
    assert "| all | full@0.5 |" in table and "rows full@X the whole of it at strength X" in table


def test_motion_scales_need_the_full_variant_and_numbers(bench):
    for argv, message in ((["--variants", "coupled", "--motion-scales", "0.5"], "include full"),
                          (["--motion-scales", "half"], "comma-separated numbers")):
        with pytest.raises(SystemExit, match=message):
            bench.changed_settings(bench.parse_args(argv), bench.Settings())


def test_a_probe_keeps_only_the_named_layers_of_the_motion_lora(bench):
    layer = "down_blocks.0.temp_attentions.0.transformer_blocks.0"
    state = {f"{layer}.{part}.lora_{ab}.weight": torch.ones(2, 2)
             for part in ("attn1.to_q", "attn2.to_v", "ff.net.2") for ab in "AB"}
    spatial = bench.LoraWeights("spatial", {"x.lora_A.weight": torch.ones(2, 2)})
    lora = bench.LoraSet((bench.LoraWeights("temporal", state), spatial), "run")

    feed_forward = bench.motion_layers(lora, bench.PROBES["full:feed-forward"])
    attention = bench.motion_layers(lora, bench.PROBES["full:attention"])

    assert sorted(feed_forward.loras[0].state) == [f"{layer}.ff.net.2.lora_A.weight", f"{layer}.ff.net.2.lora_B.weight"]
    assert len(attention.loras[0].state) == 4 and not any(".ff." in k for k in attention.loras[0].state)
    assert feed_forward.loras[1] is spatial and lora.loras[0].state == state  # the look and the original untouched


def test_the_reference_clips_share_one_appearance_and_one_motion(bench):
    clips = bench.reference_clips("zigzag", bench.Settings())
    assert len(clips) == len(bench.REFERENCE_SEEDS)
    assert {c.prompt for c in clips} == {"a red square moving in a zigzag"}
    unnamed = bench.reference_clips("zigzag", bench.Settings(captions="shape"))
    assert {c.prompt for c in unnamed} == {"a square moving in a zigzag"}  # the colour left to the frames
    assert all(torch.equal(a.frames, b.frames) for a, b in zip(clips, unnamed))
    assert all(tuple(c.frames.shape) == (8, 32, 32, 3) for c in clips)
    assert not any(shape == "square" or colour == "red" for shape, colour in bench.NEW_APPEARANCES)


def test_varied_references_each_have_a_look_of_their_own_and_nothing_reads_as_leaked(bench, tiny_model_dir,
                                                                                      tmp_path):
    settings = bench.Settings(motions=("orbit",), steps=2, rank=4, sample_seeds=(0,), sample_steps=2,
                              variants=("base", "coupled"), references="varied")
    clips = bench.reference_clips("orbit", settings)
    assert [c.prompt for c in clips] == ["a red square orbiting", "a purple triangle orbiting",
                                         "a white circle orbiting"]
    one_look = bench.reference_clips("orbit", bench.Settings(motions=("orbit",)))
    assert not torch.equal(clips[1].frames, one_look[1].frames)  # another look, the same seeds' paths
    looks = set(bench.VARIED_LOOKS)
    assert not looks & set(bench.NEW_APPEARANCES) and not {c for _, c in looks} & {c for _, c in bench.NEW_APPEARANCES}

    result = bench.run(settings, tmp_path / "runs", tiny_model_dir, printer=lambda line: None)
    for row in result["rows"]:
        assert row["leakage"] is None and row["text_alignment"] is not None
        assert all(s["leakage"] is None and s["leakage_shape"] is None for s in row["per_sample"])
    bench.write_results(result, tmp_path / "out", "python bench/motion_quality.py --references varied", 0.1)
    table = (tmp_path / "out" / "motion_quality.md").read_text()
    assert "each in a look of its own (a red square, a purple triangle, a white circle; plain background)" in table
    bench.rewrite_table(tmp_path / "out")
    assert (tmp_path / "out" / "motion_quality.md").read_text() == table


def test_intervals_and_per_sample_records(bench):
    assert bench.interval([0.5] * 10) == (0.5, 0.5) and bench.interval([1.0]) is None
    low, high = bench.interval([0.0, 1.0] * 20)
    assert low < 0.5 < high and 0.25 < low and high < 0.75
    wide = bench.interval([0.0, 1.0] * 3)
    assert wide[0] < low and wide[1] > high  # fewer samples, a wider interval
    report = {"prompt": {"colour": "blue", "shape": "circle"},
              "reference_appearance": {"colour": "red", "shape": "square"},
              "generated_objects": [{"colour": "blue", "shape": "circle"}, {"colour": "red", "shape": "circle"},
                                    {"colour": "blue", "shape": "square"}],
              "motion_fidelity_per_sample": [0.1, 0.2, 0.3], "trajectory_fidelity_per_sample": [0.4, 0.5, 0.6]}
    rows = bench.per_sample(report)
    assert [r["text_alignment"] for r in rows] == [1.0, 0.0, 0.0]
    assert [(r["text_alignment_colour"], r["text_alignment_shape"]) for r in rows] == [
        (1.0, 1.0), (0.0, 1.0), (1.0, 0.0)]
    unnamed = bench.per_sample({**report, "prompt": {"colour": None, "shape": "circle"}})
    assert [(r["text_alignment_colour"], r["text_alignment_shape"]) for r in unnamed] == [
        (None, 1.0), (None, 1.0), (None, 0.0)]
    assert [(r["leakage"], r["leakage_colour"], r["leakage_shape"]) for r in rows] == [
        (0.0, 0.0, 0.0), (1.0, 1.0, 0.0), (1.0, 0.0, 1.0)]
    assert [r["trajectory_fidelity"] for r in rows] == [0.4, 0.5, 0.6]


def test_a_chosen_set_of_variants_runs_alone(bench, tiny_model_dir, tmp_path):
    settings = bench.Settings(motions=("orbit",), steps=2, rank=4, sample_seeds=(0, 1), sample_steps=2,
                              variants=("base", "full-reference-order", "full-output-dropout"))
    result = bench.run(settings, tmp_path / "runs", tiny_model_dir, printer=lambda line: None)
    assert [r["variant"] for r in result["rows"]] == list(settings.variants)  # no probes without full
    assert all(len(r["per_sample"]) == 2 * len(bench.NEW_APPEARANCES) for r in result["rows"])
    import yaml

    for variant, key, value in (("full-reference-order", "update_order", "reference"),
                                ("full-output-dropout", "dropout_placement", "output")):
        config = yaml.safe_load((tmp_path / "runs" / "orbit" / variant / "config.yaml").read_text())
        assert config[key] == value
    bench.write_results(result, tmp_path / "out", "python bench/motion_quality.py --variants ...", 0.1)
    table = (tmp_path / "out" / "motion_quality.md").read_text()
    assert "| all | full-output-dropout |" in table and " [" in table  # intervals in brackets


def test_textured_references_share_one_texture_and_the_table_reads_its_leak(bench, tiny_model_dir, tmp_path):
    settings = bench.Settings(motions=("orbit",), steps=2, rank=4, sample_seeds=(0,), sample_steps=2,
                              variants=("base", "coupled"), background="textured")
    clips = bench.reference_clips("orbit", settings)
    backdrops = [bench.background_share(c.frames, clips[0].frames) for c in clips]
    assert backdrops == pytest.approx([1.0, 1.0, 1.0], abs=0.05)  # three paths, one backdrop
    assert "textured" not in clips[0].prompt and clips[0].prompt == "a red square orbiting"

    result = bench.run(settings, tmp_path / "runs", tiny_model_dir, printer=lambda line: None)
    for row in result["rows"]:
        shares = [s["background_share"] for s in row["per_sample"]]
        assert len(shares) == len(bench.NEW_APPEARANCES) and all(isinstance(v, float) for v in shares)
        assert row["background_share"] == pytest.approx(sum(shares) / len(shares))
    bench.write_results(result, tmp_path / "out", "python bench/motion_quality.py --background textured", 0.1)
    table = (tmp_path / "out" / "motion_quality.md").read_text()
    assert "| leaked shape | background share | train s |" in table
    assert "one texture behind all of them" in table
    bench.rewrite_table(tmp_path / "out")
    assert (tmp_path / "out" / "motion_quality.md").read_text() == table
    plain = bench.Settings(motions=("orbit",))
    assert "background share" not in "\n".join(bench.table([{"variant": "base", "train_seconds": 0}], "motions"))
    assert bench.reference_clips("orbit", plain)[0].frames[0, 0, 0].tolist() == pytest.approx([0.12, 0.12, 0.14])


def test_every_study_is_a_known_set_of_variants(bench):
    assert [s.name for s in bench.STUDIES][0] == "main" and bench.STUDY["main"].settings() == bench.Settings()
    for study in bench.STUDIES:
        settings = study.settings()
        assert set(settings.variants) <= {"base", *bench.TRAINING}, study.name
        assert study.command().startswith("python bench/motion_quality.py")
    assert bench.TRAINING["full-beta-4"]["beta"] == 4.0


def test_the_studies_run_into_their_folders_and_the_main_table_sums_them_up(bench, tiny_model_dir, tmp_path,
                                                                           monkeypatch):
    tiny = dict(motions=("orbit",), steps=2, rank=4, sample_seeds=(0,), sample_steps=2)
    studies = (bench.Study("main", "", "The references as they are.", tiny | dict(variants=("base", "coupled"))),
               bench.Study("deviations", "deviations", "Not run here.", tiny),
               bench.Study("textured_background", "diagnosis/textured", "A texture no caption names.",
                           tiny | dict(variants=("base", "temporal"), background="textured")))
    monkeypatch.setattr(bench, "STUDIES", studies)
    monkeypatch.setattr(bench, "STUDY", {s.name: s for s in studies})
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(bench, "MODEL", tiny_model_dir)

    threads = str(torch.get_num_threads())
    argv = ["--study", "main,textured_background", "--work", str(tmp_path / "runs"), "--threads", threads]
    assert bench.main(argv) == 0
    textured = json.loads((tmp_path / "results" / "diagnosis" / "textured" / "motion_quality.json").read_text())
    assert textured["command"] == "python bench/motion_quality.py --study textured_background"
    assert [r["variant"] for r in textured["rows"]] == ["base", "temporal"]
    main_table = (tmp_path / "results" / "motion_quality.md").read_text()
    summary = main_table[main_table.index("## The other studies"):]
    assert "| all | coupled |" in main_table[:main_table.index("## The other studies")]
    assert "### deviations" in summary and "Not run yet: `python bench/motion_quality.py --study deviations`" in summary
    assert "### textured_background" in summary and "| all | temporal |" in summary
    assert "background share" in summary and "(diagnosis/textured/motion_quality.md)" in summary

    assert bench.main(["--rewrite"]) == 0  # every table again from the JSON alone: the same
    assert (tmp_path / "results" / "motion_quality.md").read_text() == main_table


def test_changed_settings_never_write_over_the_studies(bench, tmp_path):
    with pytest.raises(SystemExit, match="needs --out DIR"):
        bench.main(["--steps", "2"])
    with pytest.raises(SystemExit, match="unknown studies"):
        bench.main(["--study", "textured", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="apply to one study"):
        bench.main(["--study", "main,deviations", "--steps", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown variants"):
        bench.main(["--variants", "base,full-beta-9", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())
