"""Whitespace-separated integer tables (a RecordIO ``.idx``, IJB's template pair list), read by numpy's C reader."""
import os

import numpy as np


def read_int_table(path, columns):
    """The (N, len(columns)) int64 table in ``path``, one line per row; ``columns`` names the fields for errors.

    An empty file is an empty table. A non-integer field or a line of another width raises ValueError naming
    the file and the expected layout.
    """
    if os.path.getsize(path) == 0:
        return np.zeros((0, len(columns)), dtype=np.int64)
    layout = ' '.join(columns)
    try:
        table = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except ValueError as error:
        raise ValueError(f'{path}: expected integer lines "{layout}": {error}') from None
    if table.shape[1] != len(columns):
        raise ValueError(f'{path}: expected {len(columns)} columns ({layout}) per line, found {table.shape[1]}')
    return table
