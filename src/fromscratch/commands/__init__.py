"""One module per top-level command (`fromscratch gpt ...`, `fromscratch lessons ...`).

Each module has `register(commands)`, which adds its sub-parser and sets `func` on every verb;
`cli.COMMANDS` lists the modules in order, and `common.py` holds what they share (the parser, the
argument types, the options of a `train` verb and the TrainConfig they make).
Heavy imports (torch, the models) happen inside the verbs, so `--help` is instant.
"""
