"""The small world: synthetic clips of simple shapes whose motion and appearance are known exactly.

`clips` draws them (shape, colour, motion, background, with a caption). Simple motions are what a small
base model is meant to be pretrained on; held-out motions are what customization must teach.
The embedded model is built here too: `vocab` (its tokenizer), `dataset` (pretraining clips),
`architecture` (its configs), `pretrain` (the stages that train it into a diffusers folder; CLI:
scripts/pretrain_toyworld.py) and `caption_eval` (does it draw the colour, shape and direction asked for).
"""
