"""Records per second of face RecordIO decoding, with kdzoo's BGR → RGB conversion and the strided copy it replaced.

    python tools/face2rec.py --root kdzoo/data/orl_faces --output /tmp/orl_rec --resize 112 112
    python tools/face_decode_speed.py /tmp/orl_rec [--passes 7]

Each pass reads every record of ``FaceRecordIODataset(ROOT)`` (read, unpack, decode; no pipeline) once per
conversion, the two alternating so that load changes on a shared machine hit both alike; it prints the
median records/s of each. Both conversions are first checked to give identical images.
"""
import argparse
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kdzoo.face.datasets import FaceRecordIODataset, image_codec  # noqa: E402


def decode_with_strided_copy(buffer):
    """The former conversion: a reversed-stride view of the BGR image copied into a new array."""
    return np.ascontiguousarray(cv2.imdecode(buffer, cv2.IMREAD_COLOR)[:, :, ::-1])


def records_per_second(dataset, decode):
    image_codec._decode_with_opencv = decode
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset.prepare_data(index)
    return len(dataset) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Face RecordIO decoding speed, records/s.')
    parser.add_argument('root', help='folder with train.rec / train.idx / property (tools/face2rec.py)')
    parser.add_argument('--passes', type=int, default=7)
    args = parser.parse_args(argv)
    dataset = FaceRecordIODataset(args.root, pipeline=[])
    conversions = {'cv2.cvtColor (kdzoo)': image_codec._decode_with_opencv,
                   'strided copy [:, :, ::-1]': decode_with_strided_copy}
    try:
        for index in range(len(dataset)):
            images = []
            for decode in conversions.values():
                image_codec._decode_with_opencv = decode
                images.append(dataset.prepare_data(index)['img'])
            if not np.array_equal(*images):
                raise RuntimeError(f'record {index}: the two conversions differ')
        rates = {name: [] for name in conversions}
        for _ in range(args.passes):
            for name, decode in conversions.items():
                rates[name].append(records_per_second(dataset, decode))
    finally:
        image_codec._decode_with_opencv = conversions['cv2.cvtColor (kdzoo)']
    for name, values in rates.items():
        print(f'{name:28s}{statistics.median(values):9.0f} records/s (median of {args.passes} passes over '
              f'{len(dataset)} records)')
    return {name: statistics.median(values) for name, values in rates.items()}


if __name__ == '__main__':
    main()
