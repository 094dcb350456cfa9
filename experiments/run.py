#!/usr/bin/env python
"""Few-shot cross-lingual transfer: every method of Xu & Murray (2022) on one task.

With no arguments this runs the CPU demo: NER, English -> Arabic, Swahili, Urdu, Chinese,
K = 5, seed 1, zero-shot, ord-FS, naive- and gradient-mix-train, the offline model
me5-small, 400 English sentences x 10 epochs, and prints its table (the demo preset in
the epilog).

The paper's full setting (all methods, K 1,5,10, seeds 1-5, all data):
    python experiments/run.py --preset paper --task ner --model xlm-roberta-large --device cuda

Outputs in --output-dir: results.jsonl (one score per line), summary.md/.csv (Table 1
layout), per_language.md/.csv, surgery_stats.md/.csv, curves.csv and curves_<task>.png,
shots/ (the shot manifests), source_models/ (the cached source models), run.log. A run
started again with the same --output-dir skips the cells it has finished.
"""
from __future__ import annotations

import argparse
import logging
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import transfer` from anywhere

from transfer import run_dir as D  # noqa: E402
from transfer.config import (  # noqa: E402
    METHODS, MODEL_SETTINGS, PAPER_SETTINGS, PRESETS, TASKS, VARIANTS, precedence_help, presets_help, resolve_config,
)


def _paper_line(task, s) -> str:
    variants = "".join(f", {VARIANTS[v].split(' ')[0]} alpha {values['alpha']:g}"
                       for v, values in s.variants.items() if "alpha" in values)
    text = (f"{task:7s} lr {s.lr:g}, batch {s.batch_size} ({s.batch_size // s.grad_accum_steps} x "
            f"{s.grad_accum_steps} accumulation), {s.epochs:g} epochs, max length {s.max_seq_length}, "
            f"alpha {s.alpha:g}{variants}"
            + (f", warm-up {s.warmup_steps}, weight decay {s.weight_decay:g}"
               if s.warmup_steps or s.weight_decay else "")
            + (", the last checkpoint" if s.source_selection == "last" else ""))
    return textwrap.fill(text, width=92, initial_indent="  ", subsequent_indent=" " * 10)


def settings_epilog() -> str:
    """--help's epilog: the precedence table and the tables it reads, rendered from config.py's data."""
    return precedence_help() + """

the paper's settings per task (XLM-R):
""" + "\n".join(_paper_line(t, s) for t, s in PAPER_SETTINGS.items()) + """
  every task: AdamW eps 1e-8, no weight decay on bias/LayerNorm, linear schedule,
  max grad norm 1.0 (clipped after the surgery), English dev every 100 steps; target-adapting
  at batch K, the same lr and epochs, the last checkpoint.

per-model settings:
""" + "\n".join(f"  {name:18s} {s.note}" for name, s in MODEL_SETTINGS.items()) + """

presets:
""" + presets_help() + """

the paper's text vs its published code (the default is the paper's text; --published-code
gives every code column at once, a single flag one of them):
  oracle languages      text: a random target language        code: --oracle-includes-source
                                                                    (English: a fresh random batch)
  surgery with accum.   text: once per optimizer step         code: --surgery-per-micro-batch
  NER/POS batch         text: 32                              code: 2 x 16 (--grad-accum-steps 16)
  XNLI oracle batch     text: the 3K shots                    code: --oracle-shot-subset
  TyDiQA shots          text: K questions                     code: --tydiqa-shots-in-features
  TyDiQA epochs         text: 60                              code: --epochs 30
  XNLI model            text: XLM-R base, lr 2e-5             code: --model xlm-roberta-large --lr 3e-5
"""


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` as (I, N), 1 <= I <= N; anything else is a usage error naming the value."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 1/4), got {text!r}")
    index, count = int(index), int(count)
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= I <= N")
    return index, count


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " See the epilog for the settings' sources.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=settings_epilog())
    g = p.add_argument_group("what to run")
    g.add_argument("--preset", choices=PRESETS, default=None,
                   help="demo (default): small data caps for a CPU, the methods, K, seeds and targets of the demo; "
                        "paper: every method, K 1,5,10, seeds 1-5, every target with data, all data")
    g.add_argument("--task", choices=TASKS, default=None, help="the task (default: ner)")
    g.add_argument("--methods", default=None,
                   help=f"comma-separated, from {','.join(METHODS)}")
    g.add_argument("--k", default=None, help="shots per target language, comma-separated (XNLI: per class)")
    g.add_argument("--seeds", default=None, help="comma-separated seeds; shots change with the seed")
    g.add_argument("--source", default=None, help="source language (default: en)")
    g.add_argument("--targets", default=None,
                   help="comma-separated target languages, or 'all' (every language with data but the source) ")
    g.add_argument("--language-set", default=None,
                   help="languages whose shots the one-step methods mix in and draw oracles from: "
                        "all (default, the paper's method), single (one model per target: gradient-single), "
                        "or a comma-separated subset of the targets (gradient-subset, evaluated on every target)")
    g = p.add_argument_group("data and model")
    g.add_argument("--data-dir", default=None,
                   help="XTREME data dir (<task>/<lang>/<split>); default $SGS_DATA_DIR, else ../shared/data/xtreme "
                        "beside the repository, else the Hugging Face hub")
    g.add_argument("--model", default=None,
                   help="me5-small (default: the offline multilingual-e5-small), xlm-roberta-base, "
                        "xlm-roberta-large, or any local model dir / hub name")
    g.add_argument("--model-cache-dir", default=None, help="where the offline model is built ($SGS_CACHE_DIR)")
    g.add_argument("--output-dir", default=None, help="where results go (default: outputs/<task>-<model>)")
    g.add_argument("--max-source-examples", type=int, default=None,
                   help="cap the English training set (a fixed sample, the same for every seed; 0 = all)")
    g.add_argument("--max-dev-examples", type=int, default=None,
                   help="cap the dev sets used for selection (0 = all)")
    g.add_argument("--max-eval-examples", type=int, default=None,
                   help="cap each target language's evaluation set (0 = all)")
    g.add_argument("--max-seq-length", type=int, default=None, help="max tokens per feature (paper: 128; TyDiQA 384)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, default=None, help="learning rate (paper: 2e-5, TyDiQA 3e-5; me5-small: 2e-4)")
    g.add_argument("--batch-size", type=int, default=None, help="effective batch of one-step and source training (paper: 32)")
    g.add_argument("--grad-accum-steps", type=int, default=None,
                   help="micro-batches per optimizer step (paper scripts: NER 2, TyDiQA 4, else 1)")
    g.add_argument("--epochs", type=float, default=None, help="epochs of source and one-step training (paper: 10, TyDiQA 60)")
    g.add_argument("--adapt-epochs", type=float, default=None,
                   help="epochs of target-adapting (ord-FS, ord-FS+dev, mix-FT) at batch K (default: the resolved "
                        "--epochs, so it passes over each shot as often as the one-step methods, as in the paper)")
    g.add_argument("--max-steps", type=int, default=None, help="stop every training after this many optimizer steps")
    g.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (paper: 0; TyDiQA 500)")
    g.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (paper: 0; TyDiQA 1e-4)")
    g.add_argument("--adam-eps", type=float, default=None, help="AdamW epsilon (default 1e-8)")
    g.add_argument("--max-grad-norm", type=float, default=None, help="gradient clipping after the surgery (default 1.0)")
    g.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="freeze the word embedding (default: on for me5-small, off for XLM-R)")
    g.add_argument("--eval-every", type=int, default=None,
                   help="evaluate on the English dev set every N steps to select one-step and source checkpoints ")
    g.add_argument("--source-selection", choices=("source-dev", "last"), default=None,
                   help="checkpoint of the source model and the one-step methods: the best on the English dev set "
                        "(paper; default) or the last (the paper's choice for TyDiQA, its default there)")
    g.add_argument("--selection", choices=("method", "average"), default=None,
                   help="method (default): each method's own checkpoint (--source-selection for the one-step "
                        "methods, the last for ord-FS and mix-FT, the target dev set's best for ord-FS+dev); "
                        "average: the one-step, ord-FS and mix-FT models are the average of their parameters over "
                        "the last half of their steps (checkpoint averaging, Schmidt et al. 2023: no dev set), "
                        "their rule's checkpoint scored beside it")
    g.add_argument("--eval-batch-size", type=int, default=None, help="evaluation batch size (default 64)")
    g = p.add_argument_group("gradient surgery")
    g.add_argument("--alpha", type=float, default=None,
                   help="probability of a surgery step (paper: NER/POS 1, TyDiQA/XNLI 0.1; NER's --language-set "
                        "variants: single 0.1, a subset 0.4)")
    g.add_argument("--published-code", action="store_true", default=None,
                   help="the paper's published scripts wherever they differ from its text, in one switch (the "
                        "'code' source of the table in the epilog: NER/POS 2 x 16 accumulation with surgery after "
                        "every micro-batch, English among the oracles, ...); single flags still win")
    code = argparse.BooleanOptionalAction
    g.add_argument("--oracle-includes-source", action=code, default=None,
                   help="published code: English is one of the oracle languages, as a fresh random English batch "
                        "of min(K, micro-batch) at every oracle pass (text: target languages only)")
    g.add_argument("--surgery-per-micro-batch", action=code, default=None,
                   help="published code: surgery after every micro-batch on the running accumulated gradient, "
                        "each with its own language draw (text: once per optimizer step)")
    g.add_argument("--oracle-shot-subset", action=code, default=None,
                   help="published code (its XNLI): each oracle pass on a random min(K, micro-batch) subset of the "
                        "language's shots (text: all K shots, 3K for XNLI)")
    g.add_argument("--tydiqa-shots-in-features", action=code, default=None,
                   help="published code: TyDiQA's K counts features after doc-stride splitting (text: questions)")
    g = p.add_argument_group("running")
    g.add_argument("--device", default=None, help="cpu (default) or cuda")
    g.add_argument("--num-threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice, one per core); on a busy shared machine "
                        "1 can be several times faster than oversubscribed OpenMP threads")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--save-models", action="store_true",
                   help="keep every trained job's selected model (its trainable parameters) in "
                        f"{D.CELL_MODEL_PATTERN}, for analyze.py heatmap and interpolate")
    g.add_argument("--shard", type=parse_shard, default=None, metavar="I/N",
                   help="run only the I-th of N disjoint subsets of the cells (a cluster job array, one worker per "
                        "shard, every worker with the same flags and --output-dir; not part of the run's settings); "
                        "--report-only then reports them all")
    g.add_argument("--report-only", action="store_true", help="only rebuild the reports from the output dir's records")
    return p


def setup_logging(output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in [h for h in root.handlers if getattr(h, "_sgs_run", False)]:  # from an earlier main() call
        root.removeHandler(handler)
        handler.close()
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(D.log_path(output_dir))):
        handler.setFormatter(fmt)
        handler._sgs_run = True
        root.addHandler(handler)
    for noisy in ("urllib3", "matplotlib", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()  # not the head-initialisation report of every job
    transformers.logging.disable_progress_bar()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = resolve_config(args)
    except ValueError as err:
        parser.error(str(err))
    if args.num_threads is not None and args.num_threads < 1:
        parser.error(f"--num-threads must be >= 1, got {args.num_threads}")
    from transfer import distributed_run as R

    # torchrun --nproc-per-node N (WORLD_SIZE > 1): one process group, every rank runs every cell with
    # DDP (transfer.train), only rank 0 writes (results, runs, reports, source models, run.log)
    if R.launched_with_several_processes() and not args.report_only:
        import dataclasses

        config = dataclasses.replace(config, device=R.init_from_env(config.device))
    # (--report-only under torchrun starts no group: rank 0 reports, the others return)
    is_main = R.is_main() and not (R.launched_with_several_processes() and R.launch_rank() != 0)
    try:
        if is_main:
            setup_logging(config.output_dir)
        else:
            R.setup_worker_logging()
    except OSError as err:  # a file in the way, no permission, a full disk
        parser.error(f"--output-dir {config.output_dir}: cannot write there ({err.strerror or err})")
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    from transfer.report import paired_markdown, skipped_markdown, summary_markdown, write_reports
    from transfer.results import ResultStore

    try:  # a damaged record store is one line saying how to recover, not a traceback later
        ResultStore(config.output_dir).results()
        ResultStore(config.output_dir).runs()
    except ValueError as err:
        parser.error(str(err))

    if not args.report_only:
        from transfer.runner import Runner

        start = time.perf_counter()
        try:  # the languages, and every shot pool, are read and checked here: a bad one is one line
            runner = Runner(config)
        except ValueError as err:
            parser.error(str(err))
        logging.getLogger("run").info(
            "task %s, methods %s, K %s, seeds %s, %s -> %s, model %s (lr %g, batch %d, epochs %g, frozen embedding %s)",
            config.task, ",".join(config.methods), ",".join(map(str, config.ks)), ",".join(map(str, config.seeds)),
            config.source, ",".join(runner.data.targets), config.model, config.lr, config.batch_size, config.epochs,
            config.freeze_embeddings)
        from tqdm.contrib.logging import logging_redirect_tqdm

        with logging_redirect_tqdm():  # log lines above the progress bars, not inside them
            runner.run(shard=args.shard)
        logging.getLogger("run").info("finished in %.1f min", (time.perf_counter() - start) / 60)
    R.shutdown()
    if not is_main:  # the other ranks computed; rank 0 reports
        return 0
    paths = write_reports(config.output_dir)
    results = ResultStore(config.output_dir).results()
    print(summary_markdown(results) + skipped_markdown(config.output_dir))
    print("Paired differences over seeds:\n\n" + paired_markdown(results))
    print("reports: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
