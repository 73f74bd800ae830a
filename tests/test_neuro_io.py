"""Loading recorded spikes: arrays, spike times, NWB files; bad files give one-line errors."""

from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from fromscratch.errors import UserError
from fromscratch.neuro.io import bin_spike_times, load_counts, load_nwb


def test_npy_and_npz_round_trip(tmp_path):
    counts = np.random.default_rng(0).poisson(2.0, size=(3, 5, 4))
    np.save(tmp_path / "a.npy", counts)
    np.savez(tmp_path / "b.npz", spikes=counts, other=np.zeros(2))
    np.savez(tmp_path / "c.npz", counts)
    for name in ("a.npy", "b.npz", "c.npz"):
        loaded = load_counts(tmp_path / name)
        assert loaded.dtype == torch.float32 and torch.equal(loaded, torch.tensor(counts).float())


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 5)), "3-D"),
    (-np.ones((2, 3, 4)), "negative"),
    (np.full((2, 3, 4), 0.5), "non-integer"),
    (np.array([[[np.nan]]]), "nan"),
])
def test_bad_arrays_are_one_line_errors(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(UserError, match=message) as err:
        load_counts(tmp_path / "x.npy")
    assert "\n" not in str(err.value)


def test_pickled_arrays_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="pickled"):
        load_counts(tmp_path / "x.npy")
    np.savez(tmp_path / "y.npz", spikes=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="pickled"):
        load_counts(tmp_path / "y.npz")
    with pytest.raises(UserError, match="no file"):
        load_counts(tmp_path / "missing.npy")


def test_binning_counts_each_spike_once_in_the_right_bin():
    times = [np.array([0.0, 0.009, 0.01, 0.5, 1.05]), np.array([1.0, 1.199])]
    counts = bin_spike_times(times, trial_starts=[0.0, 1.0], duration=0.2, bin_size=0.01)
    assert counts.shape == (2, 20, 2)
    assert counts[0, :, 0].tolist()[:2] == [2, 1] and counts[0, :, 0].sum() == 3  # 0.5 is after
    assert counts[1, 0, 1] == 1 and counts[1, 19, 1] == 1 and counts[1, 5, 0] == 1


def test_nwb_units_and_trials(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    nwb = pynwb.NWBFile(session_description="test", identifier="neuro-io",
                        session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    rng = np.random.default_rng(0)
    spike_times = [np.sort(rng.uniform(0, 3.0, size=40)) for _ in range(3)]
    for times in spike_times:
        nwb.add_unit(spike_times=times)
    for start in (0.0, 1.0, 2.0):
        nwb.add_trial(start_time=start, stop_time=start + 0.5)
    path = tmp_path / "session.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    counts = load_nwb(path, bin_size=0.05)
    assert torch.equal(counts, bin_spike_times(spike_times, [0.0, 1.0, 2.0], 0.5, 0.05))
    expected = sum(((t >= s) & (t < s + 0.5)).sum() for t in spike_times for s in (0, 1, 2))
    assert counts.sum() == expected
    with pytest.raises(UserError, match="no column"):
        load_nwb(path, align="go_cue_time")
