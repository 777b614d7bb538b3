"""Write the student of a trained kdzoo run: no teachers or connectors.

    python tools/export.py CONFIG CHECKPOINT [--out-dir DIR] [--name student]

Writes DIR/NAME.safetensors and DIR/NAME.pth (a plain state dict keyed as the student network itself,
e.g. loadable into ``timm.create_model(...)``; adapters that change the student's forward, such as CivT's
tokens, go to DIR/NAME.adapters.<ext>) and DIR/NAME.onnx (the student with those adapters, as deployed;
dynamic batch size, checked against
PyTorch with onnxruntime on a random batch of the config's ``model.input_size``), and prints the
parameter count and file sizes. ``--no-onnx`` skips the ONNX file. DIR/NAME.json holds what deployment needs
besides the weights (input size, the normalisation mean/std and channel order, what the output is); the ONNX
file carries the same entries in its metadata (``kdzoo.<key>``, JSON values).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import kdzoo  # noqa: E402,F401
from kdzoo.models.weights import trusted_checkpoints  # noqa: E402
from kdzoo.tools_support import (add_trust_checkpoint_flag, deployment_info, export_onnx,  # noqa: E402
                                 export_student, load_config, load_student, onnx_max_difference,
                                 write_deployment_info)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Export the bare student of a kdzoo run.')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py')
    parser.add_argument('--out-dir', help='default: the checkpoint\'s folder')
    parser.add_argument('--name', default='student')
    parser.add_argument('--no-onnx', action='store_true', help='write no ONNX file')
    parser.add_argument('--onnx-tolerance', type=float, default=1e-4,
                        help='largest accepted |ONNX - PyTorch| output difference')
    add_trust_checkpoint_flag(parser)
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    with trusted_checkpoints(args.trust_checkpoint):
        model = load_student(cfg, args.checkpoint)
    out_dir = args.out_dir or osp.dirname(osp.abspath(args.checkpoint))
    num_params = sum(v.numel() for v in model.student_state_dict().values())
    written = [export_student(model, osp.join(out_dir, f'{args.name}{ext}')) for ext in ('.safetensors', '.pth')]
    print(f'student: {num_params:,} parameters and buffers')
    if not args.no_onnx:
        onnx_path = osp.join(out_dir, f'{args.name}.onnx')
        sample = export_onnx(model, onnx_path)
        written.append(onnx_path)
        difference = onnx_max_difference(model, onnx_path, sample)
        print(f'ONNX vs PyTorch on a random batch of {tuple(sample.shape)}: max |difference| {difference:.2e}')
        if difference > args.onnx_tolerance:
            raise SystemExit(f'ONNX output differs from PyTorch by {difference:.2e} > {args.onnx_tolerance}')
    written.append(write_deployment_info(deployment_info(cfg, model), osp.join(out_dir, f'{args.name}.json'),
                                         None if args.no_onnx else onnx_path))
    for path in written:
        print(f'wrote {path} ({os.path.getsize(path) / 2 ** 20:.2f} MiB)')
    return written


if __name__ == '__main__':
    main()
