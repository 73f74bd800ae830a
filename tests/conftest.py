"""Shared test set-up."""

import os

import torch

# The suite runs in parallel (pytest -n 2): one thread per worker keeps two workers from fighting
# over the same cores, which makes small tensor operations stall.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
