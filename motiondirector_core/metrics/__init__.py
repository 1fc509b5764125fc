"""Metrics of generated motion: a small point tracker, the track-based motion fidelity of the literature, and, for
the toy world, the object's trajectory, colour and shape (appearance leakage and text alignment).

`tracking` follows points through a clip; `motion_fidelity` compares the tracks of two clips; `toyworld_object`
finds the one object of a toy-world clip; `toyworld_eval` compares its path and appearance with the reference's and
the prompt's; `toyworld_background` measures how much of a reference's backdrop a clip carries; `evaluate` puts
them together for the Evaluate node; `frames` checks the clips they all take.
"""
