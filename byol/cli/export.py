"""``byol export RUN_DIR --out FILE``: the encoder as .safetensors, .pt state dict, or ONNX."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, or an encoder file")
    p.add_argument("--out", required=True, help=".safetensors (default format) or .pt; .onnx with --onnx")
    p.add_argument("--onnx", action="store_true", help="export to ONNX (needs onnx and onnxscript)")


def run(args: argparse.Namespace) -> int:
    from byol.encoder_io import export_encoder, export_onnx

    out = export_onnx(args.run, args.out) if args.onnx else export_encoder(args.run, args.out)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
