"""Transformers beyond language: the same blocks on images, digits, sound and music.

    vit.py        the vision transformer (patch or convolutional stem) and attention rollout
    imagegpt.py   a GPT over binarised pixels: images one pixel at a time, class-conditioned
    arithmetic.py addition and multiplication learned as sequences of digits
    audio.py      spectrograms and a transformer that recognises spoken digits
    music.py      a transformer over piano rolls that writes chorales (with a NADE chain)
    midi.py       reading and writing MIDI files, written out byte by byte
"""
