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
        'second/loss_cls': 2.0365843772888184,
        'second/loss_kd': 0.10721766948699951},
 'dkd': {'loss_cls': 2.1497044563293457,
         'loss_dkd': 0.8388776183128357,
         'second/loss_cls': 2.0753302574157715,
         'second/loss_dkd': 0.6640588045120239},
 'fitnet': {'loss_cls': 2.1497044563293457,
            'loss_fitnet_stage1': 0.3428053557872772,
            'loss_fitnet_stage2': 0.24129436910152435,
            'loss_fitnet_stage3': 0.19679485261440277,
            'loss_fitnet_stage4': 0.19074507057666779,
            'second/loss_cls': 1.9986697435379028,
            'second/loss_fitnet_stage1': 0.3533700704574585,
            'second/loss_fitnet_stage2': 0.2434835582971573,
            'second/loss_fitnet_stage3': 0.19793276488780975,
            'second/loss_fitnet_stage4': 0.191040500998497},
 'ofa': {'loss_cls': 2.1497044563293457,
         'loss_ofa_stage1': 2.319723606109619,
         'loss_ofa_stage2': 2.3079988956451416,
         'loss_ofa_stage3': 2.3196816444396973,
         'loss_ofa_stage4': 2.3271281719207764,
         'loss_ofa_final': 2.3933818340301514,
         'second/loss_cls': 2.060335397720337,
         'second/loss_ofa_stage1': 2.3169283866882324,
         'second/loss_ofa_stage2': 2.3075673580169678,
         'second/loss_ofa_stage3': 2.3101308345794678,
         'second/loss_ofa_stage4': 2.3218350410461426,
         'second/loss_ofa_final': 2.393413543701172},
 'cakd': {'loss_cls': 2.1497044563293457,
          'loss_cakd_attn': 1.019582711592193e-07,
          'loss_cakd_vv': 0.002717445371672511,
          'loss_cakd_gl': 0.20020902156829834,
          'loss_cakd_adv': 0.14420703053474426,
          'loss_cakd_disc': 0.6934146881103516,
          'second/loss_cls': 1.998518705368042,
          'second/loss_cakd_attn': 1.095637713888209e-07,
          'second/loss_cakd_vv': 0.0030939423013478518,
          'second/loss_cakd_gl': 0.20039331912994385,
          'second/loss_cakd_adv': 0.14388424158096313,
          'second/loss_cakd_disc': 0.6941797733306885},
 'fofa': {'loss_cls': 2.1497044563293457,
          'loss_fofa_kd': 0.1012868583202362,
          'loss_fofa_feat': 0.5793037414550781,
          'loss_fofa_reg': 0.0,
          'second/loss_cls': 2.0497658252716064,
          'second/loss_fofa_kd': 0.10552693903446198,
          'second/loss_fofa_feat': 0.5787568688392639,
          'second/loss_fofa_reg': -4.0848135540727526e-08},
 'civt': {'loss_cls': 2.197221040725708,
          'loss_civt_conv': 0.014817300252616405,
          'loss_civt_inv': 0.009431062266230583,
          'second/loss_cls': 1.8733210563659668,
          'second/loss_civt_conv': 0.010659996420145035,
          'second/loss_civt_inv': 0.012978103011846542},
 'rkd': {'loss_cls': 2.1497044563293457,
         'loss_rkd_distance': 0.32746097445487976,
         'loss_rkd_angle': 0.523647129535675,
         'second/loss_cls': 2.1900830268859863,
         'second/loss_rkd_distance': 0.19287002086639404,
         'second/loss_rkd_angle': 0.2639712691307068},
 'dist': {'loss_cls': 2.1497044563293457,
          'loss_dist_inter': 1.0645512342453003,
          'loss_dist_intra': 1.02689528465271,
          'second/loss_cls': 1.9679341316223145,
          'second/loss_dist_inter': 0.5590234994888306,
          'second/loss_dist_intra': 0.8189021348953247},
 'face_kd': {'loss_arcface': 25.57404136657715,
             'loss_kd': 6.997629165649414,
             'second/loss_arcface': 21.776933670043945,
             'second/loss_kd': 6.5606770515441895},
 'orl_fitnet': {'loss_arcface': 25.57404136657715,
                'loss_fitnet_stage1': 3.0717201232910156,
                'loss_fitnet_stage2': 4.014169692993164,
                'loss_fitnet_stage3': 4.220170021057129,
                'loss_fitnet_stage4': 2.3859260082244873,
                'second/loss_arcface': 25.430858612060547,
                'second/loss_fitnet_stage1': 2.9738125801086426,
                'second/loss_fitnet_stage2': 3.904698610305786,
                'second/loss_fitnet_stage3': 4.146920204162598,
                'second/loss_fitnet_stage4': 2.324526309967041},
 'urfm_apt': {'loss_arcface': 25.57404136657715,
              'loss_urfm_attn': 9.081214557227213e-06,
              'loss_urfm_feat': 0.21141129732131958,
              'loss_urfm_anchor': 0.007022932171821594,
              'second/loss_arcface': 25.570430755615234,
              'second/loss_urfm_attn': 1.294107369176345e-05,
              'second/loss_urfm_feat': 0.08239886164665222,
              'second/loss_urfm_anchor': 0.007021918892860413}}


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
    return losses


def sgd_step(model, losses, lr=0.05):
    """One plain SGD step on the model's losses (not the discriminator's), so the next forward sees moved
    weights, prompts and connectors."""
    model.zero_grad()
    sum(value for term, value in losses.items() if term != 'loss_cakd_disc').backward()
    with torch.no_grad():
        for param in model.parameters():
            if param.grad is not None:
                param -= lr * param.grad


def first_step_losses(name):
    """The loss terms of two forwards on the fixed batch with an SGD step between them (the second also sees
    what the first left: FOFA's feedback prompts, URFM's EMA branch)."""
    config, overrides = CASES[name]
    model = build_without_checkpoints(config, overrides).train()
    inputs, samples = fixed_batch(model)
    torch.manual_seed(2)   # dropout, drop-path and CAKD's random views draw from here
    first = losses_of_one_forward(model, inputs, samples)
    sgd_step(model, first)
    second = losses_of_one_forward(model, inputs, samples)
    return {**{term: value.item() for term, value in first.items()},
            **{f'second/{term}': value.item() for term, value in second.items()}}


@pytest.fixture
def one_thread():
    """Sums in one thread: the step between the forwards amplifies differences in summation order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('name', list(CASES))
def test_first_step_losses_are_unchanged(name, one_thread):
    losses = first_step_losses(name)
    expected = EXPECTED[name]
    first = {term: value for term, value in expected.items() if not term.startswith('second/')}
    second = {term: value for term, value in expected.items() if term.startswith('second/')}
    assert set(losses) == set(expected)
    assert {t: losses[t] for t in first} == pytest.approx(first, rel=1e-4, abs=1e-10)
    # after the step, terms near zero (FOFA's regulariser, ~1e-8) are rounding noise
    assert {t: losses[t] for t in second} == pytest.approx(second, rel=1e-3, abs=1e-6)


if __name__ == '__main__':   # prints EXPECTED, for an intended change of behaviour
    for case in CASES:
        print(f"    {case!r}: {first_step_losses(case)!r},")
