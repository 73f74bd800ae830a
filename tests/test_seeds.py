"""The seed of a micro-batch: a pure function of (seed, step, micro, draws), unrelated for
nearby inputs."""

from fromscratch.seeds import BATCH, LOSS, micro_batch_seed


def test_every_step_and_micro_batch_gets_its_own_seed_in_range():
    seeds = {micro_batch_seed(1337, step, micro, draws)
             for step in range(50) for micro in range(4) for draws in (LOSS, BATCH)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    assert micro_batch_seed(1337, 3, 1, LOSS) == micro_batch_seed(1337, 3, 1, LOSS)
    assert micro_batch_seed(1337, 3, 1, LOSS) != micro_batch_seed(1338, 3, 1, LOSS)
    # a run and its batch source usually share the seed: the loss's noise must not be the
    # numbers that drew the batch
    assert micro_batch_seed(1337, 3, 1, LOSS) != micro_batch_seed(1337, 3, 1, BATCH)


def test_runs_with_other_seeds_share_no_stream_where_a_linear_mix_would():
    # seed · 1000003 + step: run 0 at step 1000003 would draw what run 1 draws at step 0
    assert micro_batch_seed(0, 1_000_003, 0, BATCH) != micro_batch_seed(1, 0, 0, BATCH)
    # seed · 1000003 + step · 1009 + micro: step 1 is micro-batch 1009 of step 0
    assert micro_batch_seed(5, 1, 0, BATCH) != micro_batch_seed(5, 0, 1009, BATCH)
