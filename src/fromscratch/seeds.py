"""The seed of a training step's randomness, from (seed, step, micro-batch).

Everything random in micro-batch m of step k is drawn from generators seeded by
`micro_batch_seed(seed, k, m)`: the training loop seeds torch's generator with it before the
loss (dropout masks, diffusion noise), and every batch source (data/text.py, data/images.py, ...)
seeds its own generator with it to choose the rows of the batch. So a step's draws depend on its
numbers alone, and a run resumed at step k, or split over several processes, draws exactly what
one whole run draws.

numpy's SeedSequence mixes the three numbers by a hash: nearby triples such as (1337, 3, 1) and
(1337, 3, 2) give unrelated seeds, and no two steps of two runs share one. A linear mix such as
seed · 1000003 + step would give run 0 at step 1000003 the stream of run 1 at step 0.

    generator = torch.Generator().manual_seed(micro_batch_seed(seed, step, micro))
"""

import numpy as np


def micro_batch_seed(seed: int, step: int, micro: int = 0) -> int:
    """The seed, in [0, 2⁶³), of micro-batch `micro` of step `step` in a run seeded `seed`."""
    return int(np.random.SeedSequence([seed, step, micro]).generate_state(1, np.uint64)[0] >> 1)
