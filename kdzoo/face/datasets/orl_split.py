"""The fixed open-set split of the embedded ORL faces (``kdzoo/data/orl_faces``, see its README.md).

Rule: sort the 38 subject folders by subject number (``s3, s4, ..., s40``), permute them with
``numpy.random.default_rng(0).permutation(38)``, take the first 28 for training and the last 10 as held-out
identities, then list each group by subject number. The lists are written out below so that the split can
never drift silently; ``tests/face/test_face_datasets.py`` checks that the rule still produces them.
"""
import os

import numpy as np

ORL_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'data', 'orl_faces')
ORL_SPLIT_SEED = 0
ORL_NUM_TRAIN_SUBJECTS = 28
ORL_TRAIN_SUBJECTS = ('s3', 's4', 's5', 's6', 's7', 's9', 's11', 's12', 's13', 's14', 's15', 's19', 's20', 's21',
                      's22', 's23', 's24', 's25', 's26', 's27', 's28', 's29', 's30', 's31', 's35', 's37', 's38',
                      's39')
ORL_TEST_SUBJECTS = ('s8', 's10', 's16', 's17', 's18', 's32', 's33', 's34', 's36', 's40')


def subject_number(name):
    """``'s17'`` -> 17 (also for image names: ``'7.pgm'`` -> 7)."""
    return int(os.path.splitext(name)[0].lstrip('s'))


def orl_subject_split(subjects, seed=ORL_SPLIT_SEED, num_train=ORL_NUM_TRAIN_SUBJECTS):
    """Apply the split rule to subject folder names; returns ``(train_subjects, test_subjects)`` tuples."""
    ordered = sorted(subjects, key=subject_number)
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    train = sorted((ordered[i] for i in permutation[:num_train]), key=subject_number)
    test = sorted((ordered[i] for i in permutation[num_train:]), key=subject_number)
    return tuple(train), tuple(test)


def all_pairs(labels):
    """Every unordered pair ``i < j`` of a labelled set: ``(pairs int64 (P, 2), issame bool (P,))``.

    For ORL's 100 held-out images (10 subjects x 10) that is 4,950 pairs: 450 genuine, 4,500 impostor.
    """
    labels = np.asarray(labels)
    first, second = np.triu_indices(len(labels), k=1)
    pairs = np.stack([first, second], axis=1).astype(np.int64)
    return pairs, labels[first] == labels[second]
