"""One module per top-level command (`fromscratch gpt ...`, `fromscratch lessons ...`).

Each module has `register(commands)`, which adds its sub-parser and sets `func` on every verb.
Heavy imports (torch, the models) happen inside the verbs, so `--help` is instant.
"""
