"""Behaviour pin for restructuring: the shipped configs give the same first-step losses on a fixed batch.

Each case builds the ``model`` of a shipped config (teachers randomly initialised from a fixed seed instead of
their checkpoints), runs ``DistillModel.loss`` in training mode on one fixed batch and compares every loss
term with the value recorded before kdzoo's methods were moved into units (kdzoo/methods, kdzoo/face). A
change here means a refactoring changed what a config computes; re-record only for an intended change of
behaviour, and say so in the CHANGELOG.
"""
import pytest
import torch

from kdzoo.registry import MODELS
from kdzoo.tools_support import load_config

QUICKSTART_PAIR = 'configs/quickstart/kd.py'

# (config, model overrides) -> {loss term: value}, recorded with torch 2.14.1 on CPU.
CASES = {
    'kd': ('configs/quickstart/kd.py', {}),
    'dkd': ('configs/quickstart/dkd.py', {}),
    'fitnet': ('configs/quickstart/fitnet.py', {}),
    'ofa': ('configs/quickstart/ofa.py', {}),
    # without the ramps (the config's and the code's default), whose factor is 0 on the first steps
    'cakd': ('configs/quickstart/cakd.py', dict(distillers=[dict(type='cakd', student_stage='stage1', loss_weight=0.2, schedule=None)])),
    'fofa': ('configs/quickstart/fofa.py', {}),
    'civt': ('configs/quickstart/civt.py', {}),
    'rkd': (QUICKSTART_PAIR, dict(distillers=[dict(type='rkd')])),
    'dist': (QUICKSTART_PAIR, dict(distillers=[dict(type='dist')])),
    'face_kd': ('configs/face/orl_kd.py', {}),
    'orl_fitnet': ('configs/face/orl_fitnet.py', {}),
    'urfm_apt': ('configs/face/orl_urfm_apt.py', {}),
}

EXPECTED = {'kd': {'loss_cls': 2.1497044563293457,
        'loss_kd': 0.10355529189109802,
        'second/loss_cls': 2.1497044563293457,
        'second/loss_kd': 0.10355529189109802},
 'dkd': {'loss_cls': 2.1497044563293457,
         'loss_dkd': 0.8388776183128357,
         'second/loss_cls': 2.1497044563293457,
         'second/loss_dkd': 0.8388776183128357},
 'fitnet': {'loss_cls': 2.1497044563293457,
            'loss_fitnet_stage1': 0.3428053557872772,
            'loss_fitnet_stage2': 0.24129436910152435,
            'loss_fitnet_stage3': 0.19679485261440277,
            'loss_fitnet_stage4': 0.19074507057666779,
            'second/loss_cls': 2.1497044563293457,
            'second/loss_fitnet_stage1': 0.3428053557872772,
            'second/loss_fitnet_stage2': 0.24129436910152435,
            'second/loss_fitnet_stage3': 0.19679485261440277,
            'second/loss_fitnet_stage4': 0.19074507057666779},
 'ofa': {'loss_cls': 2.1497044563293457,
         'loss_ofa_stage1': 2.319723606109619,
         'loss_ofa_stage2': 2.3079988956451416,
         'loss_ofa_stage3': 2.3196816444396973,
         'loss_ofa_stage4': 2.3271281719207764,
         'loss_ofa_final': 2.3933818340301514,
         'second/loss_cls': 2.1497044563293457,
         'second/loss_ofa_stage1': 2.319723606109619,
         'second/loss_ofa_stage2': 2.3079988956451416,
         'second/loss_ofa_stage3': 2.3196816444396973,
         'second/loss_ofa_stage4': 2.3271281719207764,
         'second/loss_ofa_final': 2.3933818340301514},
 'cakd': {'loss_cls': 2.1497044563293457,
          'loss_cakd_attn': 1.019582711592193e-07,
          'loss_cakd_vv': 0.002717445371672511,
          'loss_cakd_gl': 0.20020902156829834,
          'loss_cakd_adv': 0.14420703053474426,
          'loss_cakd_disc': 0.6934146881103516,
          'second/loss_cls': 2.1497044563293457,
          'second/loss_cakd_attn': 9.931702749099713e-08,
          'second/loss_cakd_vv': 0.0029194585513323545,
          'second/loss_cakd_gl': 0.20020902156829834,
          'second/loss_cakd_adv': 0.14404304325580597,
          'second/loss_cakd_disc': 0.6938058137893677},
 'fofa': {'loss_cls': 2.1497044563293457,
          'loss_fofa_kd': 0.1012868583202362,
          'loss_fofa_feat': 0.5793037414550781,
          'loss_fofa_reg': 0.0,
          'second/loss_cls': 2.1497044563293457,
          'second/loss_fofa_kd': 0.1012868583202362,
          'second/loss_fofa_feat': 0.5793037414550781,
          'second/loss_fofa_reg': 0.0},
 'civt': {'loss_cls': 2.197221040725708,
          'loss_civt_conv': 0.014817300252616405,
          'loss_civt_inv': 0.009431062266230583,
          'second/loss_cls': 2.197221040725708,
          'second/loss_civt_conv': 0.014817300252616405,
          'second/loss_civt_inv': 0.009431062266230583},
 'rkd': {'loss_cls': 2.1497044563293457,
         'loss_rkd_distance': 0.32746097445487976,
         'loss_rkd_angle': 0.523647129535675,
         'second/loss_cls': 2.1497044563293457,
         'second/loss_rkd_distance': 0.32746097445487976,
         'second/loss_rkd_angle': 0.523647129535675},
 'dist': {'loss_cls': 2.1497044563293457,
          'loss_dist_inter': 1.0645512342453003,
          'loss_dist_intra': 1.02689528465271,
          'second/loss_cls': 2.1497044563293457,
          'second/loss_dist_inter': 1.0645512342453003,
          'second/loss_dist_intra': 1.02689528465271},
 'face_kd': {'loss_arcface': 25.57404136657715,
             'loss_kd': 6.997629165649414,
             'second/loss_arcface': 25.57404136657715,
             'second/loss_kd': 6.997629165649414},
 'orl_fitnet': {'loss_arcface': 25.57404136657715,
                'loss_fitnet_stage1': 3.0717201232910156,
                'loss_fitnet_stage2': 4.014169692993164,
                'loss_fitnet_stage3': 4.220170021057129,
                'loss_fitnet_stage4': 2.3859260082244873,
                'second/loss_arcface': 25.57404136657715,
                'second/loss_fitnet_stage1': 3.0717201232910156,
                'second/loss_fitnet_stage2': 4.014169692993164,
                'second/loss_fitnet_stage3': 4.220170021057129,
                'second/loss_fitnet_stage4': 2.3859260082244873},
 'urfm_apt': {'loss_arcface': 25.57404136657715,
              'loss_urfm_attn': 1.3878787875898357e-11,
              'loss_urfm_feat': 0.21158358454704285,
              'loss_urfm_anchor': 0.0070504844188690186,
              'second/loss_arcface': 25.57404136657715,
              'second/loss_urfm_attn': 1.3878826039814829e-11,
              'second/loss_urfm_feat': 0.21158362925052643,
              'second/loss_urfm_anchor': 0.0070504844188690186}}


def build_without_checkpoints(config, overrides):
    cfg = load_config(config)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    model_cfg.update(overrides)
    for teacher in (model_cfg.get('teachers') or {}).values():
        teacher.pop('checkpoint', None)
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


def fixed_batch(model):
    from mmpretrain.structures import DataSample
    generator = torch.Generator().manual_seed(1)
    inputs = torch.rand((4, *model.input_size), generator=generator)
    samples = [DataSample().set_gt_label(label) for label in (0, 1, 2, 3)]
    return inputs, samples


def losses_of_one_forward(model, inputs, samples):
    losses = model.loss(inputs, samples)
    for distiller in model.distillers:
        if getattr(distiller, 'discriminator', None) is not None:
            losses.update(distiller.discriminator_loss())
    return {term: value.item() for term, value in losses.items()}


def first_step_losses(name):
    """The loss terms of two forwards on the fixed batch (the second sees what the first left: FOFA's
    feedback, URFM's EMA branch), without an update in between."""
    config, overrides = CASES[name]
    model = build_without_checkpoints(config, overrides).train()
    inputs, samples = fixed_batch(model)
    torch.manual_seed(2)   # dropout, drop-path and CAKD's random views draw from here
    first = losses_of_one_forward(model, inputs, samples)
    second = losses_of_one_forward(model, inputs, samples)
    return {**first, **{f'second/{term}': value for term, value in second.items()}}


@pytest.mark.parametrize('name', list(CASES))
def test_first_step_losses_are_unchanged(name):
    losses = first_step_losses(name)
    assert losses == pytest.approx(EXPECTED[name], rel=1e-4, abs=1e-10), losses


if __name__ == '__main__':   # prints EXPECTED, for an intended change of behaviour
    for case in CASES:
        print(f"    {case!r}: {first_step_losses(case)!r},")
