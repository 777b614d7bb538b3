"""Tiny, fast versions of the quick-start runs for tests: small data subsets, one epoch, random teachers."""
import os
import os.path as osp
import socket
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
QUICKSTART = osp.join(ROOT, 'configs', 'quickstart')


def random_weights(model_cfg, path):
    """Write a randomly initialised model's weights as safetensors, keyed as the network itself."""
    from safetensors.torch import save_file

    from kdzoo.models import build_model
    model = build_model(model_cfg)
    network = model.model if getattr(model, 'kdzoo_module_root', None) == 'model' else model
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, path)
    return path


def random_vit_teacher(path):
    """Randomly initialised quick-start ViT teacher weights (see :func:`random_weights`)."""
    from mmengine.config import Config
    return random_weights(Config.fromfile(osp.join(QUICKSTART, '_models.py')).vit_teacher, path)


def tiny_config(tmp_path, method, teacher=None, train_items=128, val_items=100, epochs=1, batch_size=32,
                extra=''):
    """A config file that inherits configs/quickstart/<method>.py and shrinks it for a test."""
    teacher_line = ''
    if teacher is not None:
        teacher_line = f"model = dict(teachers=dict(vit=dict(checkpoint={str(teacher)!r})))\n"
    text = (f"_base_ = [{osp.join(QUICKSTART, method + '.py')!r}]\n{teacher_line}"
            f"train_dataloader = dict(batch_size={batch_size}, dataset=dict(num_items={train_items}))\n"
            f"val_dataloader = dict(dataset=dict(num_items={val_items}))\n"
            f"test_dataloader = dict(dataset=dict(num_items={val_items}))\n"
            f"train_cfg = dict(max_epochs={epochs}, val_interval={epochs})\n"
            f"default_hooks = dict(logger=dict(interval=1))\n{extra}")
    path = osp.join(str(tmp_path), f'{method}_tiny.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


def load_tool(name):
    """tools/<name>.py as a module, so a test can call its ``main(argv)`` in-process."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'kdzoo_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port():
    """A TCP port nobody listens on now, so torchrun runs in a row never meet a port still in TIME_WAIT."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_tool(*args, timeout=600, env=None, cwd=None):
    """Run a python tool or module in a fresh process; returns (returncode, combined output)."""
    full_env = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1', **(env or {})}
    proc = subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def markdown_examples(markdown_file):
    """``{file name: code}`` of the python blocks marked ``<!-- example: NAME -->`` in a markdown file."""
    import re
    text = open(osp.join(ROOT, markdown_file)).read()
    return dict(re.findall(r'<!-- example: (\S+) -->\n```python\n(.*?)```', text, flags=re.S))
