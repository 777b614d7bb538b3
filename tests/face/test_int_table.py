"""kdzoo/face/datasets/int_table.py: the integer-table reader behind RecordIO .idx files and IJB pair lists."""
import numpy as np
import pytest

from kdzoo.face.datasets.int_table import read_int_table
from kdzoo.face.datasets.ijb import read_template_pair_list
from kdzoo.face.datasets.recordio import RecordIndex


def test_reads_rows_in_file_order_and_an_empty_file_as_an_empty_table(tmp_path):
    path = tmp_path / 'train.idx'
    path.write_text('0\t0\n2\t48\n1\t24\n')
    np.testing.assert_array_equal(read_int_table(str(path), ('key', 'offset')), [[0, 0], [2, 48], [1, 24]])
    (tmp_path / 'empty.idx').write_text('')
    table = read_int_table(str(tmp_path / 'empty.idx'), ('key', 'offset'))
    assert table.shape == (0, 2) and table.dtype == np.int64


@pytest.mark.parametrize('text, match', [('1 2 3\n', r'expected 2 columns \(key offset\) per line, found 3'),
                                         ('1 x\n', r'expected integer lines "key offset"')])
def test_a_bad_table_names_the_file_and_the_layout(tmp_path, text, match):
    path = tmp_path / 'train.idx'
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as error:
        read_int_table(str(path), ('key', 'offset'))
    assert str(path) in str(error.value)


def test_recordio_index_and_ijb_pairs_read_through_it(tmp_path):
    (tmp_path / 'train.idx').write_text('1\t24\n0\t0\n')
    index = RecordIndex.from_idx_file(str(tmp_path / 'train.idx'))
    np.testing.assert_array_equal(index.keys, [0, 1])
    np.testing.assert_array_equal(index.offsets, [0, 24])
    (tmp_path / 'pairs.txt').write_text('1 2 1\n3 4 0\n')
    pairs = read_template_pair_list(str(tmp_path / 'pairs.txt'))
    np.testing.assert_array_equal(pairs.labels, [1, 0])
    (tmp_path / 'bad_pairs.txt').write_text('1 2\n')
    with pytest.raises(ValueError, match=r'template_1 template_2 label'):
        read_template_pair_list(str(tmp_path / 'bad_pairs.txt'))
