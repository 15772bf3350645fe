"""``byol export RUN_DIR --out FILE`` (.safetensors, .pt, ONNX) or ``--hub DIR`` (the Hub's layout)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, or an encoder file")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help=".safetensors (default format) or .pt; .onnx with --onnx")
    where.add_argument(
        "--hub", metavar="DIR", help="a folder in the Hugging Face Hub's layout (model.safetensors, config.json, "
        "model card) that timm.create_model('local-dir:DIR', pretrained=True) and byol.load_encoder(DIR) load",
    )  # fmt: skip
    p.add_argument("--onnx", action="store_true", help="export to ONNX (needs onnx and onnxscript)")


def run(args: argparse.Namespace) -> int:
    from byol.encoder_io import export_encoder, export_onnx

    if args.hub is not None:
        from byol.hub import export_hub

        print(f"wrote {export_hub(args.run, args.hub)} (model.safetensors, config.json, README.md)")
        return 0
    out = export_onnx(args.run, args.out) if args.onnx else export_encoder(args.run, args.out)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
