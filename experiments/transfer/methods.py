"""The paper's methods as small strategies over the one training loop (``train.py``).

A method says, for one cell (task x K x seed), which models to train and how:
where a model starts (the pretrained encoder, or the source model trained on
English once per seed), which shots join its training data (and whether the
English training set does), how its checkpoint is selected, whether stochastic
gradient surgery runs, which batch size it uses and which languages it is
evaluated on. :func:`plan_jobs` turns a method and the target languages into
:class:`Job` s; ``runner.py`` executes them with ``train.train``.

=====================  =========  ======================  =============  =======  =======
method                 starts at  trains on               selects        surgery  batch
=====================  =========  ======================  =============  =======  =======
zero-shot              source     nothing                 (source model)  -        -
ord-fs                 source     one target's K shots    last           no       K
ord-fs-dev             source     one target's K shots    target dev     no       K
mix-ft                 source     all targets' shots      last           no       K
naive-mix-train        pretrained English + targets' shots  English dev   no       config
gradient-mix-train     pretrained English + targets' shots  English dev   yes      config
target-only            pretrained one target's K shots    last           no       K
target-only-full       pretrained one target's train set  target dev     no       config
=====================  =========  ======================  =============  =======  =======

Every method is also scored on the source language, as the paper's averages count it:
zero-shot and the one-step methods evaluate their own model on it; the target-adapting
methods (ord-FS, ord-FS+dev, mix-FT) leave the source model serving English, so the
runner records the source model's score for them (``Runner.source_model_scores``).
naive-mix-train draws the same oracles as gradient-mix-train and runs the surgery in
*observe* mode (``Job.surgery_mode``): its conflicts are counted, nothing is projected.

The two one-step methods take a *language set*: ``all`` (the paper: one model for
every target), ``single`` (one model per target language, trained on English and
that language's shots, which is also the only oracle: "gradient-single"), or a
list of targets (one model trained on English and those languages' shots, which
are the oracles, evaluated on every target: "gradient-subset").

The last two rows are *analysis* methods (:data:`ANALYSIS_METHOD_TABLE`), not the paper's:
never in a preset, Table 1's default method list (``config.METHODS``) or the report's pairs;
a run trains them only when ``--methods`` names them. They give the interpolation analysis
(``analysis/interpolation.py``, Wu, Van Durme & Dredze 2022) its *target* model: one model
per target language trained on that language alone from the pretrained start, the target's
counterpart of the source model. ``target-only`` trains on the language's K shots as ord-FS
does (batch K, ``--adapt-epochs``, last checkpoint), but from the pretrained encoder and
the seed's fresh task head. ``target-only-full`` trains on the language's whole ``train``
split capped like the English set (``--max-source-examples``, the same fixed sample rule)
with the source model's budget (``--batch-size``, ``--epochs``, warm-up) and its selection
rule on the language's own dev set (every ``--eval-every`` steps; ``--source-selection
last``: the last checkpoint); its cell does not depend on K, so, like zero-shot, it is one
K=0 cell per seed. A language without a ``train`` split (its shots come from dev) has no
such model: named in ``--targets`` it is an error, with ``--targets all`` it is left out of
this method only. Both are scored on their target language only. Wu et al.'s *bilingual*
model (source + one target) is the one-step methods' ``--language-set single``
(``naive-single``: plain joint training on English and that language's shots).
"""
from __future__ import annotations

from dataclasses import dataclass

SOURCE_MODEL = "source"  # Job.init: start from the cached source model
PRETRAINED = "pretrained"  # Job.init: start from the pretrained encoder

SELECT_LAST = "last"
SELECT_TARGET_DEV = "target-dev"
SELECT_SOURCE_DEV = "source-dev"
SELECT_AVERAGE = "average"  # --selection average: the parameters' average over the last steps


@dataclass(frozen=True)
class Method:
    name: str
    init: str  # SOURCE_MODEL or PRETRAINED
    shots: str  # "none" | "per-target" | "all-targets" | "language-set" | "target-train"
    with_source_data: bool  # the English training set joins the training data
    selection: str  # SELECT_LAST | SELECT_TARGET_DEV | SELECT_SOURCE_DEV
    surgery: bool
    batch: str  # "k" (target-adapting: batch K) or "config" (--batch-size)


#: One row per method of the module docstring's table (which says what each one does).
METHOD_TABLE: dict[str, Method] = {
    m.name: m
    for m in (
        Method("zero-shot", SOURCE_MODEL, "none", False, SELECT_LAST, False, "config"),
        Method("ord-fs-dev", SOURCE_MODEL, "per-target", False, SELECT_TARGET_DEV, False, "k"),
        Method("ord-fs", SOURCE_MODEL, "per-target", False, SELECT_LAST, False, "k"),
        Method("mix-ft", SOURCE_MODEL, "all-targets", False, SELECT_LAST, False, "k"),
        Method("naive-mix-train", PRETRAINED, "language-set", True, SELECT_SOURCE_DEV, False, "config"),
        Method("gradient-mix-train", PRETRAINED, "language-set", True, SELECT_SOURCE_DEV, True, "config"),
    )
}


#: The analysis methods (the module docstring's last rows): a target model for the interpolation plane.
ANALYSIS_METHOD_TABLE: dict[str, Method] = {
    m.name: m
    for m in (
        Method("target-only", PRETRAINED, "per-target", False, SELECT_LAST, False, "k"),
        Method("target-only-full", PRETRAINED, "target-train", False, SELECT_TARGET_DEV, False, "config"),
    )
}

#: the ``Method.shots`` of methods whose cell does not depend on K: one K=0 cell per seed
K_INDEPENDENT_SHOTS = ("none", "target-train")


def get_method(name: str) -> Method:
    if name in METHOD_TABLE:
        return METHOD_TABLE[name]
    if name in ANALYSIS_METHOD_TABLE:
        return ANALYSIS_METHOD_TABLE[name]
    raise ValueError(f"unknown method {name!r} (choose from {', '.join([*METHOD_TABLE, *ANALYSIS_METHOD_TABLE])})")


def k_independent(method: str) -> bool:
    """Whether ``method`` trains on no shots (zero-shot, target-only-full): one K=0 cell per seed."""
    return get_method(method).shots in K_INDEPENDENT_SHOTS


def cell_k(method: str, k: int) -> int:
    """The K a cell of ``method`` is recorded (and its models saved) under: 0 for the
    K-independent methods, else ``k``."""
    return 0 if k_independent(method) else k


@dataclass(frozen=True)
class Job:
    """One model to train (or, for zero-shot, to take as it is) and evaluate."""

    name: str  # unique within the cell: "all", or the target language for per-language jobs
    init: str
    shot_languages: tuple[str, ...]  # whose K shots join the training data
    with_source_data: bool
    oracle_languages: tuple[str, ...]  # surgery's oracles (empty: no surgery)
    surgery_mode: str | None  # "project" (gradient-mix-train), "observe" (naive-mix-train: count only), None
    selection: str
    selection_language: str | None  # the dev set's language for SELECT_TARGET_DEV / SELECT_SOURCE_DEV
    eval_languages: tuple[str, ...]
    batch: str
    target_train_languages: tuple[str, ...] = ()  # whose whole (capped) train split is the data (target-only-full)

    @property
    def trains(self) -> bool:
        return bool(self.shot_languages) or self.with_source_data or bool(self.target_train_languages)


def method_label(method: str, language_set="all") -> str:
    """The name a cell is recorded under: the method, or its gradient-single/-subset variant."""
    m = get_method(method)
    if m.shots != "language-set" or language_set == "all":
        return m.name
    stem = "gradient" if m.surgery else "naive"
    if language_set == "single":
        return f"{stem}-single"
    return f"{stem}-subset({'+'.join(language_set)})"


def plan_jobs(
    method: str,
    targets: tuple[str, ...],
    *,
    source: str = "en",
    language_set="all",
    oracle_includes_source: bool = False,
) -> list[Job]:
    """The jobs of ``method`` for these target languages (see the module docstring).

    ``oracle_includes_source`` is the published code's behaviour: English is one of
    the languages the oracle is drawn from (a fresh random English batch each time: ``Runner.oracle_batch``).
    """
    m = get_method(method)
    targets = tuple(targets)
    if not targets:
        raise ValueError("no target languages")

    def oracles(langs):
        return (*langs, source) if oracle_includes_source else tuple(langs)

    common = dict(init=m.init, with_source_data=m.with_source_data, selection=m.selection, batch=m.batch)
    adapting = dict(oracle_languages=(), surgery_mode=None, **common)
    if m.shots == "none":
        return [Job("all", shot_languages=(), selection_language=None, eval_languages=(*targets, source),
                    **adapting)]
    if m.shots == "per-target":
        return [
            Job(lang, shot_languages=(lang,), selection_language=lang if m.selection == SELECT_TARGET_DEV else None,
                eval_languages=(lang,), **adapting)
            for lang in targets
        ]
    if m.shots == "target-train":  # targets: those with a train split (RunData.train_split_targets)
        return [Job(lang, shot_languages=(), target_train_languages=(lang,), selection_language=lang,
                    eval_languages=(lang,), **adapting) for lang in targets]
    if m.shots == "all-targets":
        return [Job("all", shot_languages=targets, selection_language=None, eval_languages=targets, **adapting)]
    # one-step mixed training over a language set; naive-mix-train observes the same oracles
    one_step = dict(surgery_mode="project" if m.surgery else "observe", selection_language=source, **common)
    if language_set == "all":
        return [Job("all", shot_languages=targets, oracle_languages=oracles(targets),
                    eval_languages=(*targets, source), **one_step)]
    if language_set == "single":
        return [
            Job(lang, shot_languages=(lang,), oracle_languages=oracles((lang,)), eval_languages=(lang,), **one_step)
            for lang in targets
        ]
    subset = tuple(language_set)
    outside = [lang for lang in subset if lang not in targets]
    if outside:
        raise ValueError(f"language set {','.join(subset)}: {', '.join(outside)} not among the targets")
    return [Job("subset", shot_languages=subset, oracle_languages=oracles(subset),
                eval_languages=(*targets, source), **one_step)]
