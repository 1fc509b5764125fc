"""The small world: synthetic clips of simple shapes whose motion and appearance are known exactly.

`clips` draws them (shape, colour, motion, background, with a caption). Simple motions are what a small
base model is meant to be pretrained on; held-out motions are what customization must teach.
"""
