"""tools/inspect_pair.py: taps, stage mapping, connectors per method, and a failing method's reason."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))
import inspect_pair  # noqa: E402

PAIR = ['vit_tiny_patch16_224', 'resnet10t', '--input-size', '3', '32', '32', '--num-classes', '10',
        '--teacher-kwargs', 'img_size=32', 'patch_size=4', 'depth=4', 'embed_dim=32', 'num_heads=2']


def test_prints_taps_stages_and_connectors(capsys):
    assert inspect_pair.main(PAIR + ['--methods', 'kd', 'fitnet']) == 0
    out = capsys.readouterr().out
    assert 'stage1: tokens (65, 32), 1 prefix token(s), grid 8x8  <- model.blocks.0' in out
    assert 'stage4: map (512, 1, 1)  <- model.layer4' in out
    assert 'kd: 0 extra trainable parameters' in out
    assert 'aligners.stage4: ' in out


def test_a_method_that_cannot_serve_the_pair_exits_nonzero_with_the_reason(capsys):
    assert inspect_pair.main(PAIR + ['--methods', 'kd', 'no_such_method']) == 1
    out = capsys.readouterr().out
    assert "no_such_method: cannot serve this pair:" in out and 'Available:' in out


@pytest.mark.parametrize('text,expected', [(['a=3', 'b=x', 'c=(1, 2)'], {'a': 3, 'b': 'x', 'c': (1, 2)})])
def test_kwargs_parsing(text, expected):
    assert inspect_pair.parse_kwargs(text) == expected
