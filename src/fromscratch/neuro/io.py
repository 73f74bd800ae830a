"""Recorded spikes in: arrays of counts, spike times, and NWB files.

Everything ends up as one float tensor of spike counts, shaped (trials, time bins, neurons) —
what the simulator makes and the Neural Data Transformer reads.

    .npy / .npz   an integer array (R, T, N); an .npz holds it under "spikes" (or as its only
                  array). Read with allow_pickle=False: a file can never run code when loaded.
    spike times   per neuron, times in seconds; `bin_spike_times` counts them in bins of width Δ
                  after each trial's start:  y_n(r, t) = #{s ∈ spikes_n : start_r + tΔ ≤ s <
                  start_r + (t+1)Δ}.
    NWB           the Neurodata Without Borders format (`pynwb`, optional): the units table's
                  spike times, cut into the trials table's trials.
"""

from pathlib import Path

import numpy as np
import torch

from fromscratch.errors import UserError


def check_counts(counts: np.ndarray, source: str = "the array") -> torch.Tensor:
    """A (trials, time, neurons) array of non-negative whole numbers, as a float32 tensor."""
    if counts.dtype == object:
        raise UserError(f"{source} holds Python objects; save plain numbers (np.save of an int "
                        "array)")
    if counts.ndim != 3:
        raise UserError(f"{source} has shape {counts.shape}; spike counts must be 3-D "
                        "(trials, time bins, neurons) — add a trial axis with x[None] if needed")
    if not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise UserError(f"{source} has dtype {counts.dtype}; spike counts must be numbers")
    if not np.isfinite(counts).all():
        raise UserError(f"{source} contains nan or inf; spike counts must be finite")
    if (counts < 0).any():
        raise UserError(f"{source} contains negative values; spike counts are >= 0")
    if not np.array_equal(counts, np.round(counts)):
        raise UserError(f"{source} contains non-integer values; give spike counts per bin "
                        "(not rates: bin the spikes, or multiply rates by the bin width and round)")
    return torch.from_numpy(np.asarray(counts, dtype=np.float32))


def load_counts(path: str | Path) -> torch.Tensor:
    """Spike counts (R, T, N) from a .npy file or an .npz file (key "spikes" or a lone array)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file {path}; give a .npy or .npz of spike counts")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as err:  # what numpy raises for a pickled (object) array
        raise UserError(f"{path} holds pickled objects, which are never loaded; save a plain "
                        f"integer array ({err})") from err
    except OSError as err:
        raise UserError(f"cannot read {path} as .npy/.npz: {err}") from err
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = loaded.files
            if "spikes" in names:
                name = "spikes"
            elif len(names) == 1:
                name = names[0]
            else:
                raise UserError(f"{path} holds {names}; name the spike counts 'spikes'")
            try:
                counts = loaded[name]
            except ValueError as err:
                raise UserError(f"{path}:{name} holds pickled objects, which are never loaded; "
                                "save a plain integer array") from err
        return check_counts(counts, f"{path}:{name}")
    return check_counts(loaded, str(path))


def bin_spike_times(spike_times: list, trial_starts, duration: float,
                    bin_size: float) -> torch.Tensor:
    """Count spikes in bins: (R, T, N) with T = round(duration / bin_size).

    spike_times: one 1-D array of times (seconds) per neuron; trial_starts: (R,) seconds.
    A spike exactly on a bin's left edge belongs to that bin.
    """
    if bin_size <= 0 or duration <= 0:
        raise UserError("bin_size and duration must be positive numbers of seconds")
    n_bins = int(round(duration / bin_size))
    starts = np.asarray(trial_starts, dtype=np.float64)
    counts = np.zeros((len(starts), n_bins, len(spike_times)), dtype=np.float32)
    for n, times in enumerate(spike_times):
        times = np.asarray(times, dtype=np.float64)
        for r, start in enumerate(starts):
            edges = start + bin_size * np.arange(n_bins + 1)  # (T+1,)
            counts[r, :, n] = np.histogram(times, bins=edges)[0]
    return torch.from_numpy(counts)


def load_nwb(path: str | Path, bin_size: float = 0.01, duration: float | None = None,
             align: str = "start_time") -> torch.Tensor:
    """Binned counts (R, T, N) from an NWB file's units (spike times) and trials tables.

    Trials are aligned at the trials table's column `align` (e.g. "start_time" or an event
    column such as "go_cue_time"); `duration` defaults to the shortest trial.
    """
    try:
        from pynwb import NWBHDF5IO
    except ImportError as err:
        raise UserError("reading NWB files needs pynwb: pip install pynwb") from err
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file {path}; give an .nwb file")
    try:
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            if nwb.units is None or nwb.trials is None:
                raise UserError(f"{path} needs a units table (spike times) and a trials table")
            trials = nwb.trials.to_dataframe()
            if align not in trials.columns:
                raise UserError(f"the trials table of {path} has no column {align!r}; "
                                f"choose one of {list(trials.columns)}")
            spike_times = [np.asarray(nwb.units["spike_times"][i])
                           for i in range(len(nwb.units))]
    except (OSError, KeyError) as err:
        raise UserError(f"cannot read {path} as NWB: {err}") from err
    starts = trials[align].to_numpy()
    if duration is None:
        duration = float((trials["stop_time"] - trials[align]).min())
    return bin_spike_times(spike_times, starts, duration, bin_size)
