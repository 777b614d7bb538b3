"""Pack an image folder (one sub-folder per identity) into insightface RecordIO, and optionally a pairs ``.bin``.

    python tools/face2rec.py --root IMAGES --output OUT_DIR [--encoding .jpg|.png|keep] [--quality 95]
                             [--resize H W [--resize-mode pad|crop|stretch]]
                             [--pairs-bin OUT.bin --num-pairs N [--seed 0] [--pairs-only]]

Writes ``OUT_DIR/train.rec``, ``train.idx`` and ``property`` in the insightface layout (docs/face_reference.md §1):
record 0 is the header ``[A, B]``, keys ``1 .. A-1`` the images grouped by identity (label = index of the
identity folder in sorted order), keys ``A .. B-1`` one ``[start, end)`` record per identity. ``--pairs-bin``
also writes a verification ``.bin`` (docs/face_reference.md §2) of N pairs sampled from the same folder, half
genuine and half impostor in shuffled order; use a folder of held-out identities for a fair test set.
Read the results with ``FaceRecordIODataset(OUT_DIR)`` and ``FaceVerificationBin(OUT.bin)``.
"""
import argparse
import os
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import numpy as np  # noqa: E402

from kdzoo.face.datasets.image_codec import encode_image, read_image_file  # noqa: E402
from kdzoo.face.datasets.image_folder import IMAGE_EXTENSIONS, scan_identity_folders  # noqa: E402
from kdzoo.face.datasets.recordio import write_insightface_recordio, write_property  # noqa: E402
from kdzoo.face.datasets.transforms import FACE_RESIZE_MODES, FaceResize  # noqa: E402
from kdzoo.face.datasets.verification_bin import BIN_VARIANTS, write_verification_bin  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pack an image folder (one sub-folder per identity) into insightface RecordIO '
                    '(train.rec, train.idx, property) and optionally a verification pairs .bin.')
    parser.add_argument('--root', required=True, help='image folder: one sub-folder of images per identity')
    parser.add_argument('--output', help='folder for train.rec / train.idx / property (created if missing)')
    parser.add_argument('--prefix', default='train', help='name of the .rec/.idx files (default: train)')
    parser.add_argument('--encoding', default='.jpg', choices=['.jpg', '.png', 'keep'],
                        help="how images are stored: re-encoded as JPEG (insightface's default) or PNG, or "
                             "'keep' the files' bytes unchanged (not with --resize)")
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality (default: 95)')
    parser.add_argument('--resize', type=int, nargs=2, metavar=('H', 'W'), help='bring every image to H x W')
    parser.add_argument('--resize-mode', default='pad', choices=FACE_RESIZE_MODES,
                        help='how --resize changes the aspect ratio (see FaceResize; default: pad)')
    parser.add_argument('--pairs-bin', help='also write a verification .bin of sampled pairs to this path')
    parser.add_argument('--num-pairs', type=int, default=6000, help='pairs in --pairs-bin (default: 6000)')
    parser.add_argument('--bin-variant', default='bytes', choices=BIN_VARIANTS,
                        help='store .bin images as bytes (classic) or uint8 numpy arrays')
    parser.add_argument('--seed', type=int, default=0, help='seed of the pair sampling (default: 0)')
    parser.add_argument('--pairs-only', action='store_true', help='write only --pairs-bin, no RecordIO')
    args = parser.parse_args(argv)
    if args.encoding == 'keep' and args.resize:
        parser.error("--encoding keep stores the files unchanged, so it cannot be combined with --resize")
    if args.pairs_only and not args.pairs_bin:
        parser.error('--pairs-only needs --pairs-bin')
    if not args.pairs_only and not args.output:
        parser.error('--output is required unless --pairs-only')
    return args


class ImageEncoder:
    """Reads an image file and returns the bytes to store, plus the stored image's (height, width)."""

    def __init__(self, encoding, quality, resize=None, resize_mode='pad'):
        self.encoding, self.quality = encoding, quality
        self.resizer = FaceResize(size=tuple(resize), mode=resize_mode) if resize else None

    def __call__(self, path):
        img = read_image_file(path)
        if self.resizer is not None:
            img = self.resizer(dict(img=img))['img']
        if self.encoding == 'keep':
            with open(path, 'rb') as handle:
                return handle.read(), img.shape[:2]
        return encode_image(img, self.encoding, self.quality), img.shape[:2]


def encode_identities(identities, encoder):
    """``(images_by_identity, shapes)``: encoded bytes per identity and every stored image's (H, W)."""
    images_by_identity, shapes = [], []
    for _, paths in identities:
        encoded = [encoder(path) for path in paths]
        images_by_identity.append([data for data, _ in encoded])
        shapes.extend(shape for _, shape in encoded)
    return images_by_identity, shapes


def common_shape(shapes):
    counts = Counter(tuple(shape) for shape in shapes)
    if len(counts) > 1:
        raise SystemExit(f'images have different sizes {dict(counts.most_common(5))}; pass --resize H W '
                         '(face models expect one size, normally 112 112)')
    return next(iter(counts))


def write_recordio(output, prefix, images_by_identity, shape):
    os.makedirs(output, exist_ok=True)
    rec_path, idx_path = osp.join(output, prefix + '.rec'), osp.join(output, prefix + '.idx')
    num_images, num_classes = write_insightface_recordio(rec_path, idx_path, images_by_identity)
    write_property(osp.join(output, 'property'), num_classes, *shape)
    print(f'wrote {rec_path}, {idx_path} and property: {num_images} images of {num_classes} identities, '
          f'{shape[0]}x{shape[1]}')


def sample_pairs(labels, num_pairs, rng):
    """``(pairs (N, 2), issame (N,))``: N // 2 genuine pairs then the rest impostor, shuffled together."""
    labels = np.asarray(labels)
    genuine = sample_genuine_pairs(labels, num_pairs // 2, rng)
    impostor = sample_impostor_pairs(labels, num_pairs - num_pairs // 2, rng)
    pairs = np.concatenate([genuine, impostor]).reshape(-1, 2)
    issame = np.arange(len(pairs)) < len(genuine)
    order = rng.permutation(len(pairs))
    return pairs[order], issame[order]


def sample_genuine_pairs(labels, count, rng):
    candidates = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        first, second = np.triu_indices(len(members), k=1)
        candidates.append(np.stack([members[first], members[second]], axis=1))
    candidates = np.concatenate(candidates) if candidates else np.zeros((0, 2), dtype=np.int64)
    if count > len(candidates):
        raise SystemExit(f'asked for {count} genuine pairs but the folder has only {len(candidates)} '
                         '(identities need 2+ images); lower --num-pairs')
    return candidates[rng.choice(len(candidates), size=count, replace=False)]


def sample_impostor_pairs(labels, count, rng):
    available = (len(labels) ** 2 - np.sum(np.unique(labels, return_counts=True)[1] ** 2)) // 2
    if count > available:
        raise SystemExit(f'asked for {count} impostor pairs but the folder has only {available}; '
                         'lower --num-pairs')
    chosen = set()
    while len(chosen) < count:
        first, second = rng.integers(0, len(labels), size=2)
        if labels[first] != labels[second]:
            chosen.add((min(first, second), max(first, second)))
    return np.array(sorted(chosen), dtype=np.int64).reshape(-1, 2)


def write_pairs_bin(path, images_by_identity, num_pairs, seed, variant):
    images = [image for identity in images_by_identity for image in identity]
    labels = [label for label, identity in enumerate(images_by_identity) for _ in identity]
    pairs, issame = sample_pairs(labels, num_pairs, np.random.default_rng(seed))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_verification_bin(path, [images[index] for pair in pairs for index in pair], issame, variant=variant)
    print(f'wrote {path}: {len(pairs)} pairs ({int(issame.sum())} genuine, {int((~issame).sum())} impostor), '
          f'seed {seed}')


def main(argv=None):
    args = parse_args(argv)
    identities = [(name, paths) for name, paths in scan_identity_folders(args.root, IMAGE_EXTENSIONS) if paths]
    if not identities:
        raise SystemExit(f'{args.root}: no identity sub-folders with images ({", ".join(IMAGE_EXTENSIONS)})')
    encoder = ImageEncoder(args.encoding, args.quality, args.resize, args.resize_mode)
    images_by_identity, shapes = encode_identities(identities, encoder)
    if not args.pairs_only:
        write_recordio(args.output, args.prefix, images_by_identity, common_shape(shapes))
    if args.pairs_bin:
        write_pairs_bin(args.pairs_bin, images_by_identity, args.num_pairs, args.seed, args.bin_variant)


if __name__ == '__main__':
    main()
