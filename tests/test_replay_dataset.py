"""ReplayDataset: a random pipeline replays exactly per (seed, sample index, view)."""
import random

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from torch.utils.data import DataLoader

from kdzoo.datasets import ReplayDataset

# Random crop with padding and random flips: numpy's RNG (mmpretrain) on 32x32 digits.
RANDOM_PIPELINE = [dict(type='mmpretrain.RandomCrop', crop_size=32, padding=4),
                   dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
                   dict(type='mmpretrain.PackInputs')]


def mnist_replay(views, seed=0, items=16, pipeline=RANDOM_PIPELINE):
    return ReplayDataset(dict(type='kdzoo.EmbeddedMNIST', split='train', num_items=items, pipeline=pipeline),
                         views=views, seed=seed)


def epoch_images(replay, epoch, loader):
    """{(sample_idx, view): image tensor} over one epoch of ``loader``."""
    replay.set_epoch(epoch)
    loader.sampler.set_epoch(epoch)
    seen = {}
    for batch in loader:
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            seen[(sample.metainfo['sample_idx'], sample.metainfo['view'])] = inputs
    return seen


def loader_for(replay, workers, persistent=False):
    return DataLoader(replay, batch_size=4, sampler=DefaultSampler(replay, shuffle=True, seed=1),
                      num_workers=workers, collate_fn=pseudo_collate, persistent_workers=persistent)


def test_same_index_and_view_give_identical_tensors_across_workers_and_epochs():
    replay = mnist_replay(views=2)
    single = epoch_images(replay, 0, loader_for(replay, 0))
    assert {view for _, view in single} == {0}
    loader = loader_for(replay, 2, persistent=True)
    runs = [epoch_images(replay, epoch, loader) for epoch in range(3)]
    assert {view for _, view in runs[1]} == {1}
    for epoch in (0, 2):  # epochs 0 and 2 both use view 0, in persistent workers, in another order
        assert runs[epoch].keys() == single.keys()
        for key, image in single.items():
            assert torch.equal(runs[epoch][key], image), key


def test_different_views_differ_and_rngs_are_restored():
    replay = mnist_replay(views=4)
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    views = [[replay[(i, v)]['inputs'] for v in range(4)] for i in range(len(replay))]
    assert random.getstate() == state[0]
    assert np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
    differing = sum(not torch.equal(sample[0], sample[1]) for sample in views)
    assert differing >= len(replay) // 2
    assert all(torch.equal(replay[(i, 3)]['inputs'], views[i][3]) for i in range(len(replay)))


def test_other_seed_other_views():
    a, b = mnist_replay(views=1, seed=0), mnist_replay(views=1, seed=1)
    assert any(not torch.equal(a[i]['inputs'], b[i]['inputs']) for i in range(len(a)))


def test_face_flip_only_pipeline_has_exactly_two_views():
    """Aligned faces with a random flip only: every view is the face or its mirror image."""
    pipeline = [dict(type='kdzoo.FaceResize', size=112, mode='pad'),
                dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='mmpretrain.PackInputs')]
    replay = ReplayDataset(dict(type='kdzoo.ORLFaces', split='train', pipeline=pipeline, indices=8), views=8)
    plain = ReplayDataset(dict(type='kdzoo.ORLFaces', split='train', pipeline=pipeline[::2], indices=8), views=1)
    for index in range(len(replay)):
        face = plain[index]['inputs']
        distinct = {tuple(replay[(index, view)]['inputs'].flatten().tolist()) for view in range(8)}
        assert distinct == {tuple(face.flatten().tolist()), tuple(face.flip(-1).flatten().tolist())}


def test_view_flip_makes_two_views_exactly_the_face_and_its_mirror():
    """With ViewFlip and views=2 the cache is exact: view 0 is the face, view 1 its mirror image, every sample."""
    pipeline = [dict(type='kdzoo.FaceResize', size=112, mode='pad'), dict(type='kdzoo.ViewFlip'),
                dict(type='mmpretrain.PackInputs')]
    replay = ReplayDataset(dict(type='kdzoo.ORLFaces', split='train', pipeline=pipeline, indices=6), views=2)
    plain = ReplayDataset(dict(type='kdzoo.ORLFaces', split='train', pipeline=pipeline[::2], indices=6), views=1)
    for index in range(len(replay)):
        face = plain[index]['inputs']
        assert torch.equal(replay[(index, 0)]['inputs'], face)
        assert torch.equal(replay[(index, 1)]['inputs'], face.flip(-1))
    replay.set_epoch(3)   # epoch 3 shows view 1 of every face
    assert torch.equal(replay[0]['inputs'], plain[0]['inputs'].flip(-1))


def test_view_flip_outside_a_replay_is_a_random_flip():
    from kdzoo.face.datasets import ViewFlip
    np.random.seed(0)
    image = np.arange(12, dtype=np.uint8).reshape(2, 3, 2)
    flips = [ViewFlip()(dict(img=image.copy()))['flip'] for _ in range(400)]
    assert 150 < sum(flips) < 250   # p = 0.5
    flipped = ViewFlip(prob=1.0)(dict(img=image.copy()))
    assert np.array_equal(flipped['img'], image[:, ::-1])


def test_bad_arguments_and_unpacked_items_are_named():
    with pytest.raises(ValueError, match='views must be an int >= 1'):
        mnist_replay(views=0)
    replay = mnist_replay(views=2, pipeline=[])
    with pytest.raises(TypeError, match='PackInputs'):
        replay[0]
    with pytest.raises(IndexError, match='view 2 is outside 0..1'):
        mnist_replay(views=2)[(0, 2)]
