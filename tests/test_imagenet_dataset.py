import pytest

from kdzoo.registry import DATASETS


def test_missing_imagenet_names_the_folder_and_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        DATASETS.build(dict(type='ImageNet', data_root=str(tmp_path / 'imagenet'), split='train'))
    message = str(error.value)
    assert str(tmp_path / 'imagenet' / 'train') in message
    assert 'train_dataloader.dataset.data_root' in message and '<wnid>' in message
