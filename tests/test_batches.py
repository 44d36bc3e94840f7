"""Training batches: two endless shuffled streams with the published loaders' semantics, resumable exactly."""

import torch

from anomaly.engine import ShuffledBatches


def test_each_epoch_is_a_permutation_with_the_last_partial_batch_dropped():
    batches = ShuffledBatches(num_items=10, batch_size=3, seed=0)
    assert len(batches) == 3
    for _ in range(4):
        epoch = torch.cat([next(batches) for _ in range(len(batches))])
        assert len(epoch) == 9 and len(set(epoch.tolist())) == 9
        assert set(epoch.tolist()) <= set(range(10))


def test_epochs_are_shuffled_differently():
    batches = ShuffledBatches(num_items=50, batch_size=10, seed=0)
    first = torch.cat([next(batches) for _ in range(5)])
    second = torch.cat([next(batches) for _ in range(5)])
    assert not torch.equal(first, second)


def test_a_restored_stream_continues_identically():
    batches = ShuffledBatches(num_items=11, batch_size=4, seed=3)
    for _ in range(4):
        next(batches)
    saved = batches.state_dict()
    expected = [next(batches) for _ in range(7)]
    restored = ShuffledBatches(num_items=11, batch_size=4, seed=99)
    restored.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(expected, [next(restored) for _ in range(7)]))
