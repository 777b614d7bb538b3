"""The distiller <-> adapter protocol and named teacher roles (kdzoo/distillers/base.py,
kdzoo/adapters/interfaces.py): a user's adapter that implements an interface serves a kdzoo method (FOFA,
URFM), missing or duplicate adapters name the fix, a user's two-teacher distiller receives {role: features}
and routes gradients, and a role naming a missing teacher fails at build. Runs the examples of
docs/adding_a_distiller.md ("Several teachers", "Adapters a method needs") and docs/adding_an_adapter.md
("implement its interface")."""
import importlib
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from kdzoo.adapters import BaseAdapter, FeedbackPrompts, PromptOutputs
from kdzoo.methods import AFP, FOFA, KD
from kdzoo.models import DistillModel
from kdzoo.registry import MODELS
from kdzoo.taps import Feature, FeatureSpec
from kdzoo.taps.recorder import resolve_tap, unwrap
from run_helpers import QUICKSTART, markdown_examples, random_weights
from tiny_models import PREPROCESSOR, TINY_CNN, TINY_VIT, assert_gradient_routing, batch_of

PAGES = ('docs/adding_a_distiller.md', 'docs/adding_an_adapter.md')
QUICKSTART_MODELS = Config.fromfile(osp.join(QUICKSTART, '_models.py'))
CNN_TEACHER_16 = dict(TINY_CNN, channels=(8, 16, 32, 32))


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
    """The two pages' examples written to one folder on sys.path; their modules imported (registered) once."""
    folder = tmp_path_factory.mktemp('examples')
    for page in PAGES:
        for name, code in markdown_examples(page).items():
            (folder / name).write_text(code)
    sys.path.insert(0, str(folder))
    try:
        yield folder, {name: importlib.import_module(name) for name in ('two_teacher_kd', 'feedback_shift')}
    finally:
        sys.path.remove(str(folder))


def build_example_config(folder, monkeypatch, config_name, checkpoints, **model_options):
    """The DistillModel of an example config, its teachers' checkpoints replaced by random weights."""
    monkeypatch.chdir(folder)
    cfg = Config.fromfile(str(folder / config_name))
    for name, teacher in cfg.model.teachers.items():
        teacher.checkpoint = random_weights(checkpoints[name], str(folder / f'{name}.safetensors'))
    cfg.model.update(model_options)
    return MODELS.build(cfg.model)


def unzero_last_norms(student):
    """timm zero-initialises each block's last BN gamma, which leaves the block's first convs without gradient
    in a one-step routing check."""
    with torch.no_grad():
        for module in student.modules():
            if isinstance(module, nn.BatchNorm2d) and not module.weight.any():
                module.weight.fill_(1.0)


def two_teacher_model(**roles):
    return DistillModel(student=dict(TINY_CNN, zero_init_last=False), teachers=dict(a=TINY_VIT, b=CNN_TEACHER_16),
                        distillers=[dict(type='TwoTeacherKD', **roles)], input_size=(1, 16, 16),
                        data_preprocessor=PREPROCESSOR).train()


# ------------------------------------------------------------------------------- adapters by interface
def test_fofa_trains_a_users_feedback_prompts_adapter_that_is_not_afp(examples, monkeypatch):
    folder, _ = examples
    model = build_example_config(folder, monkeypatch, 'feedback_shift_config.py',
                                 dict(vit=QUICKSTART_MODELS.vit_teacher))
    fofa, adapter = model.distillers[0], model.adapters[0]
    unzero_last_norms(model.student)
    assert type(adapter).__name__ == 'FeedbackShift' and not isinstance(adapter, AFP)
    assert fofa.adapter('prompts') is adapter and 'prompts' not in dict(fofa.named_children())
    assert {stage: tuple(p.shape) for stage, p in adapter.scales.items()} == {f'stage{k}': (96,) for k in range(1, 5)}
    inputs, samples = torch.randn(4, 1, 32, 32), batch_of(range(4))
    first = model.loss(inputs, samples)                       # no feedback yet: the teacher runs unshifted
    assert set(adapter.shifts) == set(adapter.scales) and adapter.shifts['stage1'].shape == (4, 96)
    sum(first.values()).backward()
    assert all(p.grad is None or not p.grad.any() for p in adapter.scales.values())
    model.zero_grad()
    with torch.no_grad():
        adapter.scales['stage4'].fill_(0.5)
        shifted = model.teachers.vit(inputs)
        with adapter.prompts_disabled():
            bare = model.teachers.vit(inputs)
    assert not torch.allclose(shifted, bare)                  # FOFA's feedback now shifts the teacher
    assert_gradient_routing(model, model.loss(inputs, samples))   # the scales train from step 2 on


def test_missing_or_duplicate_adapters_fail_naming_the_method_model_and_fix(examples):
    common = dict(student=QUICKSTART_MODELS.cnn_student, teachers=dict(vit=QUICKSTART_MODELS.vit_teacher),
                  distillers=[dict(type='fofa', num_queries=16, dim=32, num_heads=2)], input_size=(1, 32, 32),
                  data_preprocessor=PREPROCESSOR)
    with pytest.raises(ValueError, match=r"^FOFA: needs one adapter providing FeedbackPrompts \(slot 'prompts'\) "
                                         r"on teacher 'vit'; found none \(adapters on teacher 'vit': \[\]\); add "
                                         r"adapters=\[dict\(type='afp', target='vit'\)\] to the model$"):
        DistillModel(**common)
    with pytest.raises(ValueError, match=r"found none \(adapters on teacher 'vit': \['APT'\]\)"):
        DistillModel(**common, adapters=[dict(type='apt', target='vit')])   # prompts, but not FeedbackPrompts
    with pytest.raises(ValueError, match=r"on teacher 'vit'; found 2: \['AFP', 'FeedbackShift'\]; keep exactly one "
                                         r"of them in adapters=\[\.\.\.\]$"):
        DistillModel(**common, adapters=[dict(type='afp', target='vit'), dict(type='FeedbackShift', target='vit')])


class FixedPromptOutputs(PromptOutputs, BaseAdapter):
    """A user's PromptOutputs: hands URFM fixed prompt outputs for one teacher module."""

    def __init__(self, path, outputs, target='t'):
        super().__init__(target)
        self.prompted_paths = (path,)
        self.outputs = outputs

    def attach(self, model):
        pass

    def last_prompt_outputs(self, path):
        return self.outputs if path in self.prompted_paths else None


def test_urfm_reads_the_prompt_outputs_of_a_users_prompt_outputs_adapter():
    import kdzoo.face.models  # noqa: F401  (registers the face models)
    from kdzoo.face.methods import URFM
    teacher = MODELS.build(dict(type='iresnet18')).requires_grad_(False).eval()
    models = {'student': nn.Identity(), 't': teacher}
    path = resolve_tap(unwrap(teacher), 'stage4').module_path
    prompts = torch.randn(2, 3, 512)
    urfm = URFM(dim=8, num_heads=2)
    urfm.bind(['t'], adapters=[FixedPromptOutputs(path, prompts)], models=models)
    assert urfm.prompt_anchor and isinstance(urfm.adapter('prompts'), FixedPromptOutputs)   # anchor on with prompts
    tokens = torch.randn(2, 512, 7, 7)
    features = {'stage4': Feature(tokens, FeatureSpec('stage4', 'map', (512, 7, 7), grid=(7, 7)))}
    f_t = urfm.teacher_tokens(features, urfm.teacher_prompt_outputs())
    assert f_t.shape == (2, 49 + 3, 512) and torch.equal(f_t[:, 49:], prompts)
    with pytest.raises(ValueError, match=f"is module '{path}', which FixedPromptOutputs does not prompt"):
        URFM(dim=8, num_heads=2).bind(['t'], adapters=[FixedPromptOutputs('layer1', prompts)], models=models)


def test_an_adapter_must_implement_the_whole_interface():
    class HalfPrompts(FeedbackPrompts, BaseAdapter):
        def attach(self, model):
            pass

        def configure(self, code_exact):
            pass

    with pytest.raises(TypeError, match="abstract.*build.*set_feedback|abstract.*set_feedback"):
        HalfPrompts()


def test_the_documented_needs_are_fofas(examples):
    folder, _ = examples
    namespace = {}
    exec((folder / 'fofa_needs.py').read_text(), namespace)
    assert namespace['adapter_needs'] == FOFA.adapter_needs


# ------------------------------------------------------------------------------- several teachers
def test_a_two_teacher_distiller_gets_features_by_role_and_routes_gradients(examples, monkeypatch):
    model = two_teacher_model(cnn='b', vit='a')
    distiller = model.distillers[0]
    assert distiller.roles == {'cnn': 'b', 'vit': 'a'}
    assert distiller.required_taps() == {'student': ['logits'], 'b': ['logits'], 'a': ['logits']}
    seen = {}
    compute = distiller.compute_losses
    monkeypatch.setattr(distiller, 'compute_losses',
                        lambda student, teachers, labels: seen.update(teachers) or compute(student, teachers, labels))
    inputs, samples = torch.randn(4, 1, 16, 16), batch_of(range(4))
    losses = model.loss(inputs, samples)
    assert set(seen) == {'cnn', 'vit'}
    with torch.no_grad():
        cnn, vit, student = model.teachers.b(inputs), model.teachers.a(inputs), model.student(inputs)
    torch.testing.assert_close(seen['cnn']['logits'].data, cnn)
    torch.testing.assert_close(seen['vit']['logits'].data, vit)
    target = (cnn.softmax(1) + vit.softmax(1)) / 2
    expected = (target * (target.log() - student.log_softmax(1))).sum(1).mean()
    torch.testing.assert_close(losses['loss_two_teacher_kd'].detach(), expected, rtol=1e-5, atol=1e-6)
    assert_gradient_routing(model, losses, connectors=False)


def test_roles_are_resolved_at_build_with_clear_errors(examples):
    assert two_teacher_model(cnn='b').distillers[0].roles == {'cnn': 'b', 'vit': 'a'}   # the one left
    with pytest.raises(KeyError, match=r"TwoTeacherKD: vit='missing' is not among the model's teachers "
                                       r"\['a', 'b'\]; set vit= to one of them"):
        two_teacher_model(cnn='b', vit='missing')
    with pytest.raises(ValueError, match=r"TwoTeacherKD: set cnn= and vit= to one of \['a', 'b'\]"):
        two_teacher_model()
    with pytest.raises(TypeError, match="reads several teachers; name them by role \\(cnn=, vit=\\)"):
        two_teacher_model(teacher='a')
    with pytest.raises(ValueError, match="TwoTeacherKD: the student has 10 classes and teacher 'b' 7"):
        DistillModel(student=TINY_CNN, teachers=dict(a=TINY_VIT, b=dict(CNN_TEACHER_16, num_classes=7)),
                     distillers=[dict(type='TwoTeacherKD', cnn='b', vit='a')], input_size=(1, 16, 16),
                     data_preprocessor=PREPROCESSOR)


def test_one_role_distillers_keep_teacher_and_share_a_teacher_between_roles(examples):
    kd = KD(teacher='t')
    assert kd.teacher == 't' and kd.roles == {'teacher': 't'} and kd.teacher_names() == ['t']
    assert kd.required_taps() == {'student': ['logits'], 't': ['logits']}
    two = examples[1]['two_teacher_kd'].TwoTeacherKD(cnn='a', vit='a')
    assert two.required_taps() == {'student': ['logits'], 'a': ['logits']} and two.teacher_names() == ['a']
    with pytest.raises(RuntimeError, match="reads several teachers"):
        two.teacher
    per_role = type('PerRoleTaps', (type(two),), {'teacher_taps': {'cnn': ('stage4',), 'vit': ('logits',)}})
    assert per_role(cnn='a', vit='b').required_taps() == {'student': ['logits'], 'a': ['stage4'], 'b': ['logits']}


def test_the_documented_two_teacher_config_builds_and_trains(examples, monkeypatch):
    folder, _ = examples
    model = build_example_config(folder, monkeypatch, 'two_teacher_config.py',
                                 dict(vit=QUICKSTART_MODELS.vit_teacher, resnet=QUICKSTART_MODELS.cnn_teacher))
    assert model.distillers[0].roles == {'cnn': 'resnet', 'vit': 'vit'}
    unzero_last_norms(model.student)
    losses = model.loss(torch.randn(2, 1, 32, 32), batch_of(range(2)))
    assert set(losses) == {'loss_cls', 'loss_two_teacher_kd'}
    assert_gradient_routing(model, losses, connectors=False)


def test_a_two_teacher_distiller_reads_both_teachers_from_the_teacher_cache(examples, monkeypatch, tmp_path):
    from mmengine.dataset import pseudo_collate

    from kdzoo.datasets import ReplayDataset
    folder, _ = examples
    model = build_example_config(folder, monkeypatch, 'two_teacher_config.py',
                                 dict(vit=QUICKSTART_MODELS.vit_teacher, resnet=QUICKSTART_MODELS.cnn_teacher),
                                 teacher_cache=dict(path=str(tmp_path / 'cache'), views=1))
    data = ReplayDataset(dict(type='kdzoo.EmbeddedMNIST', split='train', num_items=4,
                              pipeline=[dict(type='mmpretrain.PackInputs')]), views=1)
    model.teacher_cache.open(data)
    batch = model.data_preprocessor(pseudo_collate([data[i] for i in range(4)]), True)
    inputs, samples = batch['inputs'], batch['data_samples']
    filled = model.loss(inputs, samples)['loss_two_teacher_kd']          # computed live, written
    assert model.teacher_cache.store.filled() == 4
    assert set(model.teacher_cache.features(inputs, samples)) == {'vit', 'resnet'}
    cached = model.loss(inputs, samples)['loss_two_teacher_kd']          # both teachers read back
    cache, model.teacher_cache = model.teacher_cache, None
    live = model.loss(inputs, samples)['loss_two_teacher_kd']
    model.teacher_cache = cache
    torch.testing.assert_close(cached, live, rtol=0, atol=0)
    torch.testing.assert_close(filled, live, rtol=0, atol=0)
