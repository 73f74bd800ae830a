"""`fromscratch diffusion toy` end to end: exact-score and trained runs write their plots and
print distances that are numbers we can check; bad arguments end in one line and exit code 2."""

import re

import pytest
import torch

from fromscratch.cli import main
from fromscratch.commands.diffusion import SAMPLER_NAMES
from fromscratch.data.toy2d import sample_toy
from fromscratch.diffusion.metrics import sliced_wasserstein2
from fromscratch.diffusion.samplers import SAMPLERS

PNG = b"\x89PNG\r\n\x1a\n"


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def distances(out: str) -> tuple[float, float]:
    """(sliced W2 of the samples, of data vs data) from the printed line."""
    match = re.search(r"sliced W2 to the data ([\d.]+) \(data vs data ([\d.]+)\)", out)
    assert match, out
    return float(match.group(1)), float(match.group(2))


def test_exact_score_sampling_lands_near_the_data_floor(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "diffusion", "toy", "--data", "gmm", "--exact-score",
                           "--sampler", "dpm_solver_2m", "--steps", "15", "--samples", "800",
                           "--out", str(tmp_path))
    assert code == 0
    ours, floor = distances(out)
    noise = sliced_wasserstein2(torch.randn(800, 2, generator=torch.Generator().manual_seed(0)),
                                sample_toy("mixture", 800))
    assert ours < 2 * floor < noise  # noise itself is far from the data
    assert "NFE 15" in out
    for name in ("samples.png", "trajectories.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_a_trained_flow_model_samples_and_is_saved(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "diffusion", "toy", "--data", "moons", "--sampler",
                           "flow_euler", "--steps", "10", "--samples", "500", "--train-steps",
                           "150", "--out", str(tmp_path))
    assert code == 0
    ours, _ = distances(out)
    noise = sliced_wasserstein2(torch.randn(500, 2, generator=torch.Generator().manual_seed(0)),
                                sample_toy("moons", 500))
    assert ours < 0.7 * noise  # 150 steps of training already pull noise towards the moons
    assert "trained 150 steps" in out
    assert any((tmp_path / "model").iterdir())
    assert (tmp_path / "samples.png").read_bytes()[:8] == PNG


def test_the_command_offers_every_sampler():
    assert set(SAMPLER_NAMES) == set(SAMPLERS) | {"ode_rk45", "flow_euler", "flow_heun"}


@pytest.mark.parametrize("args,message", [
    (["--data", "moons", "--exact-score"], "--exact-score needs a data set with a known density"),
    (["--data", "gmm", "--exact-score", "--sampler", "flow_heun"], "drop --exact-score"),
    (["--data", "gmm", "--exact-score", "--sampler", "heun_edm", "--steps", "1"],
     "heun_edm needs --steps 2"),
    (["--data", "spiral"], "invalid choice: 'spiral'"),
    (["--data", "gmm", "--sampler", "euler"], "invalid choice: 'euler'"),
    (["--data", "gmm", "--steps", "0"], "--steps: must be > 0"),
])
def test_bad_arguments_end_in_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    try:
        code, out, err = run_cli(capsys, "diffusion", "toy", *args, "--out", str(tmp_path))
    except SystemExit as exit_:  # argparse's own errors exit directly
        code, err = exit_.code, capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1, err
