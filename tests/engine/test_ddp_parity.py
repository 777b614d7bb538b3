"""The same job on 1 process and on 2 (torchrun, gloo) at the same global batch ends in the same place.

mmengine's DefaultSampler gives rank r the indices perm[r::2], so at 2 × 16 the two ranks' batches k
together are exactly the single process's batch k of 32, and DDP averages the two half-batch gradients
into the full-batch gradient. With a ViT student and teacher (LayerNorm only, no batch statistics) the
runs differ only by floating-point reduction order: final weights must agree within 1e-4 (1.2e-5 measured) and the
validation accuracy exactly. (BatchNorm students would differ more: each rank normalises its own half.)
"""
import os

import pytest
import torch
from mmengine.config import Config

from run_helpers import QUICKSTART, ROOT, free_port, random_vit_teacher, run_tool, tiny_config

TOLERANCE = 1e-4  # 8 AdamW steps amplify reduction-order differences (1.2e-5 measured)


def parity_config(tmp_path, batch_size, teacher, train_items=256, extra_lines=''):
    vit = Config.fromfile(os.path.join(QUICKSTART, '_models.py')).vit_teacher.to_dict()
    small_vit = dict(vit, depth=4, embed_dim=48, _delete_=True)  # replaces the base config's CNN student
    extra = (f"model = dict(student={small_vit!r}, teachers=dict(vit=dict(model={vit!r}, checkpoint={teacher!r})), "
             "distillers=[dict(type='kd', temperature=2.0), dict(type='fitnet')])\n"
             "randomness = dict(seed=0, deterministic=True)\ncustom_hooks = []\nparam_scheduler = None\n" + extra_lines)
    folder = tmp_path / f'b{batch_size}'
    folder.mkdir()
    # student_only's pipeline has no random augmentation (vit_teacher.py's random shifts would draw per rank)
    return tiny_config(folder, 'student_only', train_items=train_items, val_items=200, batch_size=batch_size,
                       extra=extra)


def validation_accuracy(log):
    lines = [line for line in log.splitlines() if 'Epoch(val)' in line and 'accuracy/top1: ' in line]
    assert lines, 'no validation result in the log'
    return lines[-1].split('accuracy/top1: ')[1].split()[0]


@pytest.mark.dist
def test_one_and_two_processes_reach_the_same_weights(tmp_path):
    teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    single, double = str(tmp_path / 'single'), str(tmp_path / 'double')
    rc, out = run_tool('tools/train.py', parity_config(tmp_path, 32, teacher), '--work-dir', single)
    assert rc == 0, out[-2000:]
    rc, out2 = run_tool('-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                        os.path.join(ROOT, 'tools', 'train.py'), parity_config(tmp_path, 16, teacher),
                        '--launcher', 'pytorch', '--work-dir', double)
    assert rc == 0, out2[-3000:]
    a = torch.load(os.path.join(single, 'epoch_1.pth'), weights_only=False)['state_dict']
    b = torch.load(os.path.join(double, 'epoch_1.pth'), weights_only=False)['state_dict']
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < TOLERANCE, f'largest weight difference {worst:.2e}'
    assert validation_accuracy(out) == validation_accuracy(out2)


@pytest.mark.dist
def test_loss_parity_one_and_two_processes_for_20_iterations(tmp_path):
    """The loss of the 1 × 32 run equals the mean of the 2 × 16 ranks' losses at each of 20 iterations.

    Same sampler split as above and a BatchNorm-free (ViT) pair: each loss term is a mean over samples, so the
    full batch's loss is the mean of the two halves'. With BatchNorm the ranks would normalise with half-batch
    statistics and differ (docs/distributed.md)."""
    import json
    teacher = random_vit_teacher(str(tmp_path / 'teacher.safetensors'))
    recorder = "custom_imports = dict(imports=['loss_recorder'])\ncustom_hooks = [dict(type='LossRecorderHook')]\n"
    env = dict(PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'tests'), os.environ.get('PYTHONPATH', '')]))
    single, double = tmp_path / 'single', tmp_path / 'double'
    rc, out = run_tool('tools/train.py', parity_config(tmp_path, 32, teacher, 640, recorder), '--work-dir',
                       str(single), env=env)
    assert rc == 0, out[-2000:]
    rc, out = run_tool('-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                       os.path.join(ROOT, 'tools', 'train.py'), parity_config(tmp_path, 16, teacher, 640, recorder),
                       '--launcher', 'pytorch', '--work-dir', str(double), env=env)
    assert rc == 0, out[-3000:]
    one = json.loads((single / 'losses_rank0.json').read_text())
    halves = [json.loads((double / f'losses_rank{rank}.json').read_text()) for rank in (0, 1)]
    assert len(one) == len(halves[0]) == len(halves[1]) == 20
    worst = max(abs(full - (a + b) / 2) for full, a, b in zip(one, *halves))
    assert worst < 1e-5, f'largest loss difference over 20 iterations: {worst:.2e}'
