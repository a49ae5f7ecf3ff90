"""Looking at recovered motion: `egogrpo view OUTPUT.npz`.

`motion_file` reads and checks a `recovered.npz`; `png` draws a strip of frames with matplotlib
(headless); `viewer` serves a browser scene with viser (the optional "viewer" extra).
"""
