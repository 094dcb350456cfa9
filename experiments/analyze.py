#!/usr/bin/env python
"""Analyses and figures over a run's output directory (run.py --output-dir) or checkpoints.

Every command writes a PNG and the numbers behind it (CSV and JSON) into
<run dir>/analysis/ (or --output-dir), atomically, and prints their paths.

  heatmap      cosine similarity of the languages' gradients (source: mean over source batches;
               targets: their K shots), one heatmap per checkpoint (default: the naive-mix-train
               and gradient-mix-train models, averaged over the run's seeds), languages ordered by
               family (Xu & Murray 2022, Fig. 1)
  overfitting  ord-FS+dev's target dev score per epoch; which languages peak at epoch 1 (Fig. 3)
  gains        top and bottom languages by gradient-mix-train minus ord-FS, per task and K (Tables 2, 8)
  interpolate  a * bilingual + (1 - a) * source model along a grid of a, on source and target dev
               sets; with a target model also Wu et al.'s plane theta_0 + a1 (source - theta_0)
               + a2 (target - theta_0) (theta_0: the pretrained start) as contour plots, the
               bilingual model located in it (Wu, Van Durme & Dredze 2022)
  similarity   zero-shot score and few-shot gain per language against lang2vec similarity to the
               source (syntax, phonology, inventory, family, geography) and the target's CC-100
               pretraining size: Pearson, Spearman and a leave-one-out linear meta-regression on
               greedily selected features (Lauscher et al. 2020)

Examples:
    python experiments/analyze.py gains --run-dir outputs/pos-me5-small --top 3
    python experiments/analyze.py heatmap --run-dir outputs/pos-me5-small \\
        --checkpoint naive=ckpt/naive --checkpoint gradient=ckpt/gradient --k 5 --seed 1
    python experiments/analyze.py interpolate --run-dir outputs/pos-me5-small --bilingual-method naive-mix-train \\
        --language-set single --target-method target-only-full --target-language ar --k 5 --seed 1

Checkpoints (heatmap, interpolate) are directories saved with save_pretrained (with the task head)
or in the harness's format (trained_state.safetensors: the trained parameters, loaded on top of
the base model --model, by default the run's). Without explicit paths they are looked up in the run
dir: source models in source_models/<task>/seed<S>/, the selected model of a cell's job in
models/<task>/<method>/k<K>/seed<S>/<job>/ (job: "all", or the target language for per-language
methods), where the run saved them.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import transfer` from anywhere

from transfer import run_dir as D  # noqa: E402
from transfer.tables import parse_list  # noqa: E402


def _floats(text: str, what: str, n: int) -> tuple[float, ...]:
    return parse_list(text, what, float, count=n)


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    return None if text is None else parse_list(text, what, int)


# ----------------------------------------------------------------------------- arguments


def _output_args(p, run_dir_required: bool = True):
    p.add_argument("--run-dir", required=run_dir_required,
                   help="the run's output directory (run.py --output-dir)" + ("" if run_dir_required else
                        "; optional when every checkpoint, --task, --model and --languages are given"))
    p.add_argument("--output-dir", default=None, help="where to write (default: <run dir>/analysis)")


def _model_args(p):
    g = p.add_argument_group(f"models and data (default: the run's {D.RUN_CONFIG_FILE})")
    g.add_argument("--task", default=None, help="the task (default: the run's)")
    g.add_argument("--model", default=None,
                   help="base model the harness-state checkpoints were trained from, and the tokenizer "
                        "(default: the run's model, e.g. me5-small, resolved like run.py does)")
    g.add_argument("--model-cache-dir", default=None, help="where the offline model is built ($SGS_CACHE_DIR)")
    g.add_argument("--data-dir", default=None,
                   help=f"XTREME data dir (default: the one the run read, as its {D.DATA_FILES_FILE} records; "
                        "for a run without that record $SGS_DATA_DIR, else ../shared/data/xtreme beside the "
                        "repository). Its files must have the content the run recorded: a changed file is an error "
                        "naming it")
    g.add_argument("--source", default=None, help="source language (default: the run's, else en)")
    g.add_argument("--languages", default=None, help="comma-separated target languages (default: the run's targets)")
    g.add_argument("--k", type=int, default=None,
                   help="shots per language of the cell whose models and shots to use (default: the run's K if it has one)")
    g.add_argument("--seed", type=int, default=None, help="the cell's seed (default: the run's seed if it has one)")
    g.add_argument("--max-seq-length", type=int, default=None, help="default: the run's")
    g.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="leave the word embedding out of the gradients (default: as the run trained)")
    g.add_argument("--device", default="cpu", help="cpu (default) or cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("heatmap", help="gradient cosine similarity between languages, per checkpoint (Figure 1)",
                       description="Cosine similarity of the gradients of the source language (the mean over "
                                   "--source-batches training batches) and of each target language's K shots, "
                                   "computed for all pairs in one pass with sgs_ext.gram; one heatmap per "
                                   "checkpoint, negative cells hatched, languages ordered by family. From the run "
                                   "dir's models and without --seed, the matrices are averaged over every seed the "
                                   "run has for --methods at K (each seed's models measured with its own shots and "
                                   "source sample), as the paper averages its seeds; --seed or --checkpoint: one seed. "
                                   "The title names the seeds and the number of source batches.")
    _output_args(p, run_dir_required=False)
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                   help="a checkpoint to analyse, repeatable (default: the run dir's models of --methods)")
    p.add_argument("--methods", default="naive-mix-train,gradient-mix-train",
                   help="without --checkpoint: the methods whose saved models (job 'all') to compare "
                        "(default: naive-mix-train,gradient-mix-train)")
    p.add_argument("--source-batches", type=int, default=8,
                   help="source training batches averaged into its gradient, per seed (default 8, kept small because "
                        "each batch costs a forward and backward pass per checkpoint and seed, minutes for XLM-R on a "
                        "CPU; the paper averages 100: --source-batches 100 to match it)")
    p.add_argument("--batch-size", type=int, default=None, help="source batch size (default: the run's, else 32)")
    p.add_argument("--train-mode", action="store_true",
                   help="take the gradients with dropout on, as training does (default: eval mode, deterministic)")
    _model_args(p)

    p = sub.add_parser("overfitting", help="ord-FS+dev target dev score per epoch (Figure 3)",
                       description=f"Target dev score per epoch of the target-adapting runs in {D.RUNS_FILE}, mean "
                                   "over seeds, and which languages peak at the first epoch.")
    _output_args(p)
    p.add_argument("--method", default="ord-fs-dev", help="the method whose dev curves to read (default ord-fs-dev)")

    p = sub.add_parser("gains", help="languages that gain most and least (Tables 2 and 8)",
                       description="Per task and K, each language's gain of --method over --baseline on the "
                                   "primary metric (paired by seed, mean over seeds), ranked; the top and "
                                   "bottom --top languages.")
    _output_args(p)
    p.add_argument("--method", default="gradient-mix-train", help="default gradient-mix-train")
    p.add_argument("--baseline", default="ord-fs", help="default ord-fs")
    p.add_argument("--top", type=int, default=5, help="how many languages at each end (default 5)")
    p.add_argument("--metric", default=None, help="default: the task's primary metric")
    p.add_argument("--k", default=None, help="comma-separated K values (default: every K with both methods)")

    p = sub.add_parser("interpolate", help="models between checkpoints on source and target dev (Wu et al. 2022)",
                       description="Evaluate a * bilingual + (1 - a) * source for a on a grid, on the source dev "
                                   "set and each target's dev set (without the run's shots); with --target-model "
                                   "(or --target-method) also Wu et al.'s plane theta_0 + a1 (source - theta_0) + "
                                   "a2 (target - theta_0) for --target-language, as contour plots, where theta_0 is "
                                   "the pretrained start of --seed (the base model with the seed's initial task "
                                   "head, as the runner builds it), and the bilingual model's least-squares "
                                   "coordinates in the plane and distance from it. The target model should be "
                                   "trained on the target alone from that start (target-only, target-only-full); a "
                                   "plane whose axes have |cosine| > 0.95 (e.g. an ord-FS target model, the source "
                                   "model plus a few steps) is refused. Wu et al.'s bilingual model is source + that "
                                   "one target: --bilingual-method naive-mix-train --language-set single.")
    _output_args(p, run_dir_required=False)
    p.add_argument("--bilingual", default=None,
                   help="the bilingual (mixed-training) checkpoint (default: the run dir's --bilingual-method model)")
    p.add_argument("--bilingual-method", default="gradient-mix-train",
                   help=f"the method (as {D.RESULTS_FILE} names it, e.g. gradient-single) whose saved model is the "
                        "bilingual one (default gradient-mix-train)")
    p.add_argument("--language-set", default="all", choices=("all", "single"),
                   help="the run's --language-set of --bilingual-method: single names its per-target cells "
                        "(naive-mix-train -> naive-single, one model per target on the source + that target's "
                        "shots: Wu et al.'s bilingual model); default all")
    p.add_argument("--bilingual-job", default=None,
                   help="the job of the bilingual model (default: --target-language for a -single method, else all)")
    p.add_argument("--source-model", default=None,
                   help=f"the source-only checkpoint (default: the run dir's {D.SOURCE_MODEL_PATTERN})")
    p.add_argument("--target-model", default=None,
                   help="a target checkpoint for the 2-D plane, trained on the target alone from the pretrained start")
    p.add_argument("--target-method", default=None,
                   help="or: the run dir's model of this per-language method for --target-language: target-only "
                        "(its K shots) or target-only-full (its train split; its cells are K=0)")
    p.add_argument("--target-language", default=None, help="the target language of the 2-D plane")
    p.add_argument("--points", type=int, default=11, help="grid points on the line (default 11)")
    p.add_argument("--range", default="0,1", help="range of a on the line (default 0,1)")
    p.add_argument("--grid", default="-0.25,1.25,7", help="2-D grid: low,high,points per axis (default -0.25,1.25,7)")
    p.add_argument("--max-eval-examples", type=int, default=200,
                   help="cap each dev set to a fixed sample (default 200; 0 = all)")
    p.add_argument("--eval-batch-size", type=int, default=64, help="default 64")
    p.add_argument("--loss", action=argparse.BooleanOptionalAction, default=True,
                   help="also record the mean loss on each set (a second pass over it; default on)")
    _model_args(p)

    p = sub.add_parser("similarity", help="transfer against lang2vec similarity to the source (Lauscher et al. 2020)",
                       description="Correlate each language's zero-shot score and each method's few-shot gain "
                                   "over zero-shot with its similarity to the source language (cosine of lang2vec "
                                   "URIEL vectors: syntax_knn, phonology_knn, inventory_knn, fam, geo) and with "
                                   "size, ln of its CC-100 pretraining data in GiB (Conneau et al. 2020, Table 6; "
                                   "missing for languages not in CC-100, which the fits then leave out): Pearson, "
                                   "Spearman, and a leave-one-out linear meta-regression on features chosen by "
                                   "greedy forward selection (lowest leave-one-out RMSE; a fit of p features "
                                   "needs n > p + 2 languages). Needs `pip install lang2vec==1.1.2`, or "
                                   "--similarity-csv, or --features size.")
    _output_args(p)
    p.add_argument("--task", default=None, help="default: the run's")
    p.add_argument("--metric", default=None, help="default: the task's primary metric")
    p.add_argument("--methods", default=None, help="comma-separated methods whose gains to analyse (default: all)")
    p.add_argument("--k", default=None, help="comma-separated K values (default: all)")
    p.add_argument("--source", default=None, help="the source language (default: the run's, else en)")
    p.add_argument("--features", default=",".join(("syntax", "phonology", "inventory", "family", "geography", "size")),
                   help="the candidate features (default: syntax,phonology,inventory,family,geography,size)")
    p.add_argument("--similarity-csv", default=None,
                   help="use this table instead of lang2vec: a 'language' column and one column per feature "
                        "(size: from the CC-100 table unless the file has a size column)")
    return parser


# ----------------------------------------------------------------------------- commands


def _run_defaults(run, methods, k, seed):
    """K and seed of the cell: explicit, else the only value the run has for these methods."""
    from transfer.analysis.common import pick_one

    if (k is None or seed is None) and run is not None:
        records = [r for r in run.all_results() if r["method"] in methods]
        if k is None:
            k = pick_one([int(r["k"]) for r in records], "--k", f"K values for {', '.join(methods)}")
        if seed is None:
            seed = pick_one([int(r["seed"]) for r in records], "--seed", "seeds")
    if k is None or seed is None:
        raise ValueError("--k and --seed: name the cell whose shots (and models) to use")
    return k, seed


def _setup(args, run, checkpoints):
    from transfer.analysis.checkpoints import make_setup
    from transfer.analysis.common import parse_languages

    return make_setup(run, task=args.task, model=args.model, model_cache_dir=args.model_cache_dir,
                      data_dir=args.data_dir, source=args.source,
                      targets=parse_languages(args.languages, "--languages"), max_seq_length=args.max_seq_length,
                      freeze_embeddings=args.freeze_embeddings, device=args.device, checkpoints=tuple(checkpoints))


def _out_dir(args, run) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    if run is None:
        raise ValueError("--output-dir: where to write (there is no --run-dir)")
    return run.output_dir()


def cmd_heatmap(args, run) -> dict:
    from transfer.analysis import gradient_similarity
    from transfer.analysis.checkpoints import find_checkpoint

    methods = list(parse_list(args.methods, "--methods"))
    checkpoints = {}
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint: expected NAME=DIR, got {item!r}")
        if name in checkpoints:
            raise ValueError(f"--checkpoint: the name {name!r} is given twice")
        checkpoints[name] = find_checkpoint(path, None, name, "--checkpoint")
    if args.source_batches < 1:
        raise ValueError(f"--source-batches: at least 1, got {args.source_batches}")
    if checkpoints or args.seed is not None:  # one seed: the given one (or the run's only one)
        k, seed = _run_defaults(run, methods, args.k, args.seed)
        seeds = [seed]
    else:  # every seed the run has for the methods at K
        if run is None:
            raise ValueError("--checkpoint: give the checkpoints (or --run-dir with saved models)")
        from transfer.analysis.common import pick_one

        records = [r for r in run.all_results() if r["method"] in methods]
        k = args.k if args.k is not None else pick_one([int(r["k"]) for r in records], "--k",
                                                        f"K values for {', '.join(methods)}")
        seeds = sorted({int(r["seed"]) for r in records if int(r["k"]) == k})
        if not seeds:
            raise ValueError(f"--seed: the run has no results of {', '.join(methods)} at K={k}; give --seed")
    by_seed = {seeds[0]: checkpoints} if checkpoints else {}
    if not checkpoints:
        task = run.task(args.task)
        for seed in seeds:
            by_seed[seed] = {m: find_checkpoint(None, D.cell_model_dir(run.path, task, m, k, seed, "all"), m,
                                                "--checkpoint") for m in methods}
    setup = _setup(args, run, [path for paths in by_seed.values() for path in paths.values()])
    batch_size = args.batch_size or (run.setting("batch_size", 32) // run.setting("grad_accum_steps", 1)
                                     if run is not None else 32)
    return gradient_similarity.run(setup, by_seed, k=k, out_dir=_out_dir(args, run),
                                   n_source_batches=args.source_batches, batch_size=batch_size,
                                   train_mode=args.train_mode)


def cmd_interpolate(args, run) -> dict:
    from transfer import methods as M
    from transfer.analysis import interpolation
    from transfer.analysis.checkpoints import cell_job, find_checkpoint

    # the bilingual cell as results.jsonl names it: naive-mix-train + --language-set single -> naive-single
    known = args.bilingual_method in {**M.METHOD_TABLE, **M.ANALYSIS_METHOD_TABLE}
    bilingual_method = (M.method_label(args.bilingual_method, args.language_set) if known
                        else args.bilingual_method)
    needs_run = not (args.bilingual and args.source_model)
    k, seed = (args.k, args.seed)
    if needs_run or args.target_method:
        if run is None:
            raise ValueError("--run-dir: needed to find the checkpoints not given explicitly")
        k, seed = _run_defaults(run, [bilingual_method], k, seed)
    task = run.task(args.task) if run is not None else args.task
    job = None if args.bilingual else cell_job(bilingual_method, args.bilingual_job, args.target_language,
                                               "--bilingual-job")
    bilingual = find_checkpoint(args.bilingual, D.cell_model_dir(run.path, task, bilingual_method, k, seed,
                                                                 job) if run and job else None,
                                "bilingual", "--bilingual")
    source = find_checkpoint(args.source_model, D.source_model_dir(run.path, task, seed) if run else None,
                             "source", "--source-model")
    target = None
    if args.target_model or args.target_method:
        if not args.target_language:
            raise ValueError("--target-language: name the target language of the 2-D plane")
        if seed is None:
            raise ValueError("--seed: the plane's origin is the pretrained start with the seed's initial task head; "
                             "name the seed")
        target_k = M.cell_k(args.target_method, k) if args.target_method in M.ANALYSIS_METHOD_TABLE else k
        default = (D.cell_model_dir(run.path, task, args.target_method, target_k, seed, args.target_language)
                   if args.target_method and run is not None else None)
        target = find_checkpoint(args.target_model, default, "target", "--target-model")
    setup = _setup(args, run, [bilingual, source, target])
    out_dir = _out_dir(args, run)
    max_examples = args.max_eval_examples or None
    tag = f"{setup.task.name}" + (f"_k{k}_seed{seed}" if k is not None and seed is not None else "")
    label = bilingual_method if not args.bilingual else Path(args.bilingual).name
    paths = {}
    if target is not None:  # first: a refused plane (collinear axes) stops before any evaluation
        lo, hi, n = _floats(args.grid, "--grid", 3)
        if n != int(n):
            raise ValueError(f"--grid: the number of points must be an integer, got {n}")
        plane = interpolation.run_plane(setup, bilingual=bilingual, source=source, target=target, seed=seed,
                                        language=args.target_language, out_dir=out_dir,
                                        stem=f"interpolation2d_{tag}_{args.target_language}",
                                        coords=interpolation.grid(lo, hi, int(n)), max_examples=max_examples,
                                        batch_size=args.eval_batch_size, label=label, with_loss=args.loss)
        paths.update({f"2d_{key}": value for key, value in plane.items()})
    lo, hi = _floats(args.range, "--range", 2)
    line = interpolation.run_line(setup, bilingual=bilingual, source=source, out_dir=out_dir,
                                  stem=f"interpolation_{tag}", alphas=interpolation.grid(lo, hi, args.points),
                                  max_examples=max_examples, batch_size=args.eval_batch_size, label=label,
                                  with_loss=args.loss)
    return {**line, **paths}


def cmd_overfitting(args, run) -> dict:
    from transfer.analysis import overfitting

    return overfitting.run(run.runs(), _out_dir(args, run), method=args.method)


def cmd_gains(args, run) -> dict:
    from transfer.analysis import language_gains

    return language_gains.run(run.results(), _out_dir(args, run), method=args.method, baseline=args.baseline,
                              top=args.top, metric=args.metric, ks=_ints(args.k, "--k"))


def cmd_similarity(args, run) -> dict:
    from transfer.analysis import language_similarity

    features = parse_list(args.features, "--features")
    if not args.similarity_csv:
        unknown = [f for f in features if f not in language_similarity.FEATURES]
        if unknown:
            raise ValueError(f"--features: unknown {', '.join(unknown)} "
                             f"(features: {', '.join(language_similarity.FEATURES)})")
    methods = parse_list(args.methods, "--methods") if args.methods else None
    task = run.task(args.task) if run.config else args.task
    return language_similarity.run(run.results(), _out_dir(args, run), source=args.source or run.setting("source", "en"),
                                   task=task, metric=args.metric, methods=methods, ks=_ints(args.k, "--k"),
                                   features=features, similarity_csv=args.similarity_csv)


COMMANDS = {"heatmap": cmd_heatmap, "overfitting": cmd_overfitting, "gains": cmd_gains,
            "interpolate": cmd_interpolate, "similarity": cmd_similarity}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from transfer.analysis.common import RunDir

    try:
        run = RunDir(args.run_dir) if args.run_dir else None
        paths = COMMANDS[args.command](args, run)
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as err:
        parser.exit(2, f"analyze.py {args.command}: error: {err}\n")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
