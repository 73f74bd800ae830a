"""kill -9 during training (often inside a checkpoint write): the run always resumes exactly.

The full count (20 kills) is benchmarks/crash_resume.py; this is its short version."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "crash_resume.py"


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_loss_trajectory(tmp_path):
    spec = importlib.util.spec_from_file_location("crash_resume", SCRIPT)
    crash_resume = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(crash_resume)
    result = crash_resume.run(kills=3, steps=30, seed=1, workdir=tmp_path)
    assert result["kills"] == 3
    assert len(result["resumed"]) == len(result["reference"]) == 30
    assert result["resumed"] == result["reference"]  # float for float
