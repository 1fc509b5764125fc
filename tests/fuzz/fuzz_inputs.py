#!/usr/bin/env python
"""Mutation fuzzing of the readers that take users' files: clips (videos, images), our LoRA files, the authors' .pt.

    python tests/fuzz/fuzz_inputs.py                      # the test suite's 300 cases
    python tests/fuzz/fuzz_inputs.py --cases 5000 --seed 7 # a longer run

Each case mutates one valid seed file (bit flips, overwritten, inserted, deleted or repeated bytes, truncation;
half of the edits aimed at the headers, where the structure lives) and hands it to the reader exactly as a user's
file would be. A case passes when the file loads or the reader raises MotionDirectorError. Any other exception,
a crash of the interpreter, or a case that runs longer than --case-timeout seconds fails the run; the case number
and seed are printed first, so `--seed S --only N` replays it.
"""

import argparse
import faulthandler
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from motiondirector_core import lora  # noqa: E402
from motiondirector_core.families.modelscope import released as legacy  # noqa: E402
from motiondirector_core.clips import FrameSampling, read_clip  # noqa: E402
from motiondirector_core.errors import MotionDirectorError  # noqa: E402
from motiondirector_core.lora_files import read_lora_source, save_lora  # noqa: E402
from motiondirector_core.models import FAMILIES  # noqa: E402
from tests.fixtures.media import moving_square, write_pyav  # noqa: E402
from tests.fixtures.tiny_model import UNET_CONFIG  # noqa: E402

HEADER_BYTES = 512  # edits aimed at the structure land in the first (or, for zip files, last) bytes
SAMPLING = FrameSampling(frames=3, width=16, height=16)


def make_seeds(folder: Path, unet) -> list[tuple[str, Path]]:
    """(reader, file) pairs of valid inputs: the files each case starts from."""
    from PIL import Image

    seeds = []
    frames = moving_square(6, height=16, width=32)
    for suffix in (".mp4", ".webm", ".gif", ".avi", ".mkv"):
        seeds.append(("clip", write_pyav(folder / f"seed{suffix}", frames, fps=8)))
    for suffix in (".png", ".jpg", ".webp", ".bmp"):
        path = folder / f"seed{suffix}"
        Image.fromarray(frames[3]).save(path)
        seeds.append(("clip", path))
    family = FAMILIES["modelscope"]
    torch.manual_seed(0)
    for kind in ("temporal", "spatial"):
        lora.add_adapter(unet, family, kind, kind, rank=2)
        for param in lora.adapter_parameters(unet, kind):
            torch.nn.init.normal_(param, std=0.05)
        state = lora.adapter_state(unet, kind)
        seeds.append(("lora", save_lora(folder / f"seed_{kind}.safetensors", lora.LoraWeights(kind, state), alpha=2)))
        flat = []
        for layer in legacy.module_table(UNET_CONFIG, kind):
            flat += [state[layer.path + lora.B_SUFFIX].clone(), state[layer.path + lora.A_SUFFIX].clone()]
        (folder / kind).mkdir()
        torch.save(flat, folder / kind / "seed_unet.pt")
        seeds.append(("lora", folder / kind / "seed_unet.pt"))
        lora.remove_adapter(unet, kind)
    from safetensors.torch import save_file  # a PEFT file without our metadata: kind from its layer names

    save_file({f"base_model.model.{k}": v.contiguous() for k, v in state.items()}, folder / "seed_peft.safetensors")
    seeds.append(("lora", folder / "seed_peft.safetensors"))
    return seeds


def _position(rng: random.Random, size: int, zip_like: bool) -> int:
    if rng.random() < 0.5:
        near = min(size, HEADER_BYTES)
        offset = rng.randrange(max(1, near))
        return size - 1 - offset if zip_like and rng.random() < 0.5 else offset
    return rng.randrange(max(1, size))


def mutate(data: bytes, rng: random.Random, zip_like: bool) -> tuple[bytes, str]:
    """One to three random edits of `data`; returns the new bytes and a description."""
    out = bytearray(data)
    done = []
    for _ in range(rng.randint(1, 3)):
        if not out:
            out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
            done.append("refilled")
            continue
        at = _position(rng, len(out), zip_like)
        edit = rng.choice(("flip", "flip", "overwrite", "insert", "delete", "repeat", "truncate", "number"))
        if edit == "flip":
            for _ in range(rng.randint(1, 16)):
                i = _position(rng, len(out), zip_like)
                out[i] ^= 1 << rng.randrange(8)
        elif edit == "overwrite":
            n = rng.randint(1, 64)
            out[at:at + n] = bytes(rng.choice((0, 255, rng.randrange(256))) for _ in range(len(out[at:at + n])))
        elif edit == "insert":
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 256)))
        elif edit == "delete":
            del out[at:at + rng.randint(1, 256)]
        elif edit == "repeat":
            n = rng.randint(1, 512)
            out[at:at] = out[at:at + n] * rng.randint(1, 4)
        elif edit == "truncate":
            del out[at:]
        else:  # a digit in a text header (safetensors JSON: shapes and offsets) becomes another number
            digits = [i for i in range(min(len(out), 4096)) if 48 <= out[i] <= 57]
            if digits:
                i = rng.choice(digits)
                out[i:i + 1] = str(rng.choice((0, 1, 9, 99999, 2**31, 2**63))).encode()
        done.append(f"{edit}@{at}")
    return bytes(out), ",".join(done)


def read(reader: str, path: Path, unet) -> str:
    """Hand `path` to the reader as a user's file; returns what it held."""
    if reader == "clip":
        clip = read_clip(path, SAMPLING, "p")
        return f"{tuple(clip.frames.shape)}"
    family = FAMILIES["modelscope"]
    weights = read_lora_source(path, unet_config=UNET_CONFIG)
    for index, item in enumerate(weights):
        name = f"fuzz_{index}"
        try:
            lora.load_adapter(unet, family, item, name)
        finally:
            if name in lora.adapter_names(unet):
                lora.remove_adapter(unet, name)
    return f"{len(weights)} LoRA(s)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="run this case number alone (to replay a failure)")
    parser.add_argument("--case-timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    parser.add_argument("--verbose", action="store_true", help="print what each case loaded or why it was refused")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from diffusers import UNet3DConditionModel

    unet = UNet3DConditionModel(**UNET_CONFIG)
    counts, failures, began = {"loaded": 0, "refused": 0}, [], time.time()
    with tempfile.TemporaryDirectory(prefix="md-fuzz-") as tmp:
        tmp = Path(tmp)
        (tmp / "seeds").mkdir()
        seeds = make_seeds(tmp / "seeds", unet)
        for case in range(args.cases) if args.only is None else [args.only]:
            rng = random.Random(f"{args.seed}:{case}")
            reader, seed_path = seeds[rng.randrange(len(seeds))]
            data, edits = mutate(seed_path.read_bytes(), rng, zip_like=seed_path.suffix == ".pt")
            # Same name and folder as the seed: the authors' files take their kind from their folder.
            path = tmp / "case" / seed_path.relative_to(tmp / "seeds")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            label = f"case {case} (--seed {args.seed} --only {case}): {seed_path.name} {edits}"
            print(label, file=sys.stderr, flush=True)  # the last line names the case if it hangs or crashes
            faulthandler.dump_traceback_later(args.case_timeout, exit=True)
            try:
                outcome = read(reader, path, unet)
                counts["loaded"] += 1
            except MotionDirectorError as exc:
                outcome = f"refused: {str(exc)[:120]}"
                counts["refused"] += 1
            except Exception:  # noqa: BLE001 - anything but our clear error is what this hunts for
                failures.append(f"{label}\n{traceback.format_exc()}")
                outcome = "FAILED"
            finally:
                faulthandler.cancel_dump_traceback_later()
            if args.verbose:
                print(f"  -> {outcome}", flush=True)
            path.unlink()
    total = counts["loaded"] + counts["refused"] + len(failures)
    print(f"{total} cases in {time.time() - began:.0f} s: {counts['loaded']} loaded, {counts['refused']} refused "
          f"with a clear error, {len(failures)} failed", flush=True)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
