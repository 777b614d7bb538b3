"""docs/adding_a_dataset.md runs as written: its CSV dataset, built from its config, reads a generated list of
real digits, refuses a bad row naming the line, and trains for an epoch; its .npz dataset reads arrays."""
import glob
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

import kdzoo  # noqa: F401  (the 'kdzoo::' config prefix the example inherits from)
from kdzoo.datasets import EmbeddedMNIST
from kdzoo.registry import DATASETS
from run_helpers import markdown_examples

PAGE = 'docs/adding_a_dataset.md'
TRAIN, VAL = range(0, 32), range(32, 48)


@pytest.fixture
def tutorial(tmp_path, monkeypatch):
    """The page's files in a folder of their own (the working directory), with ``my_digits/{train,val}.csv``
    listing 48 digits of the embedded MNIST test split written as 32x32 PNG files; returns the labels."""
    for name, code in markdown_examples(PAGE).items():
        (tmp_path / name).write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    digits = EmbeddedMNIST(split='test', num_items=len(TRAIN) + len(VAL))
    (tmp_path / 'my_digits' / 'images').mkdir(parents=True)
    labels = {}
    for split, indices in (('train', TRAIN), ('val', VAL)):
        rows = ['path,label']
        for i in indices:
            item = digits[i]
            cv2.imwrite(str(tmp_path / 'my_digits' / 'images' / f'{i}.png'), item['img'])
            rows.append(f"images/{i}.png,{item['gt_label']}")
        (tmp_path / 'my_digits' / f'{split}.csv').write_text('\n'.join(rows) + '\n')
        labels[split] = [digits[i]['gt_label'] for i in indices]
    yield labels
    sys.modules.pop('csv_images', None)  # each test registers the page's classes from its own copy
    sys.modules.pop('npz_images', None)
    DATASETS.module_dict.pop('CsvImageList', None)
    DATASETS.module_dict.pop('NpzImages', None)


def example_config():
    return Config.fromfile('csv_digits_config.py')  # imports custom_imports, registering CsvImageList


def test_csv_dataset_from_the_config_lists_the_labels_and_packs_the_models_input(tutorial):
    cfg = example_config()
    assert cfg.test_dataloader.dataset.ann_file == 'my_digits/val.csv'
    assert 'split' not in cfg.train_dataloader.dataset  # _delete_ dropped EmbeddedMNIST's arguments
    train, val = (DATASETS.build(cfg[f'{split}_dataloader'].dataset) for split in ('train', 'val'))
    assert type(train).__name__ == 'CsvImageList' and len(train) == len(TRAIN) and len(val) == len(VAL)
    assert [train.get_data_info(i)['gt_label'] for i in range(len(train))] == tutorial['train']
    assert train.metainfo['classes'] == tuple('0123456789')
    item = val[3]
    assert tuple(item['inputs'].shape) == (1, 32, 32) and item['inputs'].dtype == torch.uint8
    assert item['data_samples'].gt_label.tolist() == [tutorial['val'][3]]
    original = EmbeddedMNIST(split='test', num_items=len(TRAIN) + len(VAL))[VAL[3]]['img']
    np.testing.assert_array_equal(item['inputs'][0].numpy(), original)


@pytest.mark.parametrize('row, problem', [('images/1.png,seven', "label 'seven' is not a class index 0..9"),
                                          ('images/1.png,10', "label '10' is not a class index 0..9"),
                                          ('images/1.png,-1', "label '-1' is not a class index 0..9"),
                                          ('images/1.png', '1 columns'),
                                          ('images/missing.png,3', 'missing.png')])
def test_a_bad_row_is_refused_naming_file_line_and_fix(tutorial, row, problem):
    cfg = example_config()
    with open('my_digits/train.csv', 'a') as f:
        f.write(row + '\n')
    line = len(TRAIN) + 2  # the header, the 32 digits, then the bad row
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        DATASETS.build(cfg.train_dataloader.dataset)
    message = str(error.value)
    assert message.startswith(f'my_digits/train.csv, line {line}: ') and problem in message
    assert 'write each row as path,label' in message or 'fix the path or remove the row' in message


def test_one_epoch_of_kd_trains_on_the_csv_and_the_teacher_reads_its_digits(tutorial, tmp_path):
    from kdzoo.cli.train import main
    main(['csv_digits_config.py', '--work-dir', str(tmp_path / 'work'),
          '--cfg-options', 'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1'])
    log = open(glob.glob(str(tmp_path / 'work' / '*' / '*.log'))[0]).read()
    assert re.search(r'Epoch\(train\) \[1\]\[4/4\].*loss_kd: \d', log)  # 32 digits / 8 = 4 steps
    teacher_top1 = float(re.search(r"teacher 'vit' on the validation set: accuracy/top1: ([\d.]+)", log)[1])
    assert teacher_top1 == 100.0  # the shipped teacher on 16 held-out digits: the CSV's images are MNIST's
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def test_custom_imports_on_the_command_line_brings_a_module_in(tutorial, tmp_path):
    from kdzoo.tools_support import load_config
    (tmp_path / 'cli_imported_probe.py').write_text('IMPORTED = True\n')
    cfg = load_config('kdzoo::quickstart/kd.py', {'custom_imports.imports': ['cli_imported_probe']})
    assert cfg.custom_imports.imports == ['cli_imported_probe'] and sys.modules.pop('cli_imported_probe').IMPORTED


def test_npz_dataset_reads_images_and_labels_and_names_a_missing_array(tutorial):
    import npz_images  # noqa: F401  (registers NpzImages)
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    np.savez('my_digits/train.npz', images=images, labels=np.arange(5))
    dataset = DATASETS.build(dict(type='NpzImages', ann_file='my_digits/train.npz',
                                  pipeline=[dict(type='mmpretrain.PackInputs')]))
    assert len(dataset) == 5 and dataset[4]['data_samples'].gt_label.tolist() == [4]
    np.testing.assert_array_equal(dataset[2]['inputs'][0].numpy(), images[2])
    np.savez('my_digits/bad.npz', pictures=images, labels=np.arange(5))
    with pytest.raises(KeyError, match=r"no array\(s\) \['images'\].*np.savez\(path, images=..., labels=...\)"):
        DATASETS.build(dict(type='NpzImages', ann_file='my_digits/bad.npz'))
