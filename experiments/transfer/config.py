"""Run configuration: the paper's per-task settings, per-model settings, the presets, and
the resolution of command-line flags into one :class:`RunConfig`.

Where each setting comes from is ONE table, :data:`PRECEDENCE`: a setting's name and its
sources in order; the first source that sets it (gives a value other than None) wins.
:func:`resolve_config` resolves every setting by looping over its row, and
``run.py --help`` prints the same table (:func:`precedence_help`), so the documented order
is the order used. The sources, in the order they take in every row that has them:

1. ``flag``: an explicit command-line flag;
2. ``model``: the model's settings (``MODEL_SETTINGS``: none for XLM-R, which runs the
   paper's settings; lr 2e-4 and a frozen word embedding for the small offline model
   ``me5-small``, without which it barely learns). A model's settings are what that model
   needs to train at all, whatever the size of the run, so they sit above the preset;
3. ``preset``: the size of the run (``PRESET_SETTINGS``: ``--preset demo``, the default,
   caps data and epochs so a run finishes on a laptop CPU; ``--preset paper``: all data,
   every method, K 1,5,10, seeds 1-5). A preset sits above the paper for the settings it
   sets: a CPU preset must be able to cut the paper's epochs;
4. ``code``: with ``--published-code``, the settings of the paper's published scripts where
   they differ from its text (``CODE_SETTINGS``: NER and POS 2 x 16 accumulation with
   surgery after every micro-batch, English among the oracles, ...); without it, nothing;
5. ``variant``: the paper's settings for a ``--language-set`` variant of the one-step
   methods (its Figure 2: gradient-single, gradient-subset), e.g. NER's alpha 0.1 / 0.4
   (``TaskSettings.variants``);
6. ``paper``: the task's paper settings (``PAPER_SETTINGS``);
7. ``default``: the harness's own default (``DEFAULT_SETTINGS``: the demo preset, POS,
   me5-small, English, the CPU, ...);
8. the name of another setting: that setting's resolved value. ``adapt_epochs`` (the
   epochs of target-adapting: ord-FS, ord-FS+dev and mix-FT fine-tune on the K shots at
   batch K) is ``flag > epochs``: unless ``--adapt-epochs`` is given, target-adapting
   makes as many passes over each shot as the one-step methods, which mix the shots into
   every epoch of their training, as in the paper (the same epochs for both). A preset
   that cuts the epochs (the demo's 3) cuts both.

Everything the paper's text and its published code disagree on is a switch whose
default is the paper's text (see ``docs`` of each flag in ``run.py --help``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from .tables import parse_list

TASKS = ("ner", "pos", "tydiqa", "xnli")

#: every method of the paper, in the order of its Table 1
METHODS = ("zero-shot", "ord-fs-dev", "ord-fs", "mix-ft", "naive-mix-train", "gradient-mix-train")
#: analysis-only methods (methods.ANALYSIS_METHOD_TABLE: the interpolation's target models), run only when named
ANALYSIS_METHODS = ("target-only", "target-only-full")

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TaskSettings:
    """One task's training settings (batch is the effective batch: micro-batch x accumulation)."""

    lr: float
    batch_size: int
    grad_accum_steps: int
    epochs: float
    max_seq_length: int
    alpha: float
    warmup_steps: int = 0
    weight_decay: float = 0.0
    eval_every: int = 100
    source_selection: str = "source-dev"  # how source-trained and one-step models are selected: source-dev | last
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    freeze_embeddings: bool = False  # the paper fine-tunes the whole model
    #: the paper's settings for the --language-set variants (the "variant" source):
    #: {"single" | "subset": {setting: value}}; a setting not named here keeps the task's
    variants: dict = field(default_factory=dict, compare=False)


#: The paper's settings (Xu & Murray 2022, its text; its scripts where the text is silent).
#: Model: XLM-R large for NER/POS, XLM-R base for XNLI (text) and TyDiQA.
PAPER_SETTINGS: dict[str, TaskSettings] = {
    # 32 = 2 x 16 accumulation in the published scripts. Figure 2's variants on NER (its
    # footnotes 9-10): alpha 0.1 for gradient-single, 0.4 for the language subsets.
    "ner": TaskSettings(lr=2e-5, batch_size=32, grad_accum_steps=2, epochs=10, max_seq_length=128, alpha=1.0,
                        variants={"single": {"alpha": 0.1}, "subset": {"alpha": 0.4}}),
    "pos": TaskSettings(lr=2e-5, batch_size=32, grad_accum_steps=1, epochs=10, max_seq_length=128, alpha=1.0),
    # the scripts run XLM-R large at lr 3e-5; the text names XLM-R base at 2e-5
    "xnli": TaskSettings(lr=2e-5, batch_size=32, grad_accum_steps=1, epochs=10, max_seq_length=128, alpha=0.1),
    # 32 = 8 x 4; 60 epochs in the text (30 in the scripts); warm-up 500, weight decay 1e-4
    "tydiqa": TaskSettings(
        lr=3e-5, batch_size=32, grad_accum_steps=4, epochs=60, max_seq_length=384, alpha=0.1,
        warmup_steps=500, weight_decay=1e-4, source_selection="last",  # the paper keeps TyDiQA's final model
    ),
}

#: The published code's settings where they differ from the paper's text (the "code" source,
#: read only with --published-code; each is also its own flag). The scripts train NER and
#: POS with per-device batch 2 x 16 accumulation and run the surgery after every micro-batch
#: on the running accumulated gradient (16 projections per step, each with its own language
#: draw); every prediction language is an oracle, English included, as a fresh random
#: source batch of min(K, micro-batch) each time; the XNLI oracle is a random min(K,
#: micro-batch) subset of the 3K shots; TyDiQA counts K in features and trains 30 epochs;
#: XNLI runs at lr 3e-5 (with XLM-R large: give --model xlm-roberta-large).
_CODE_ORACLES = {"oracle_includes_source": True, "surgery_per_micro_batch": True}
CODE_SETTINGS: dict[str, dict[str, object]] = {
    "ner": {"grad_accum_steps": 16, **_CODE_ORACLES},
    "pos": {"grad_accum_steps": 16, **_CODE_ORACLES},
    "xnli": {"lr": 3e-5, "oracle_shot_subset": True, **_CODE_ORACLES},
    "tydiqa": {"epochs": 30, "tydiqa_shots_in_features": True, **_CODE_ORACLES},
}

#: the --language-set variants with paper settings of their own (``TaskSettings.variants``)
VARIANTS = {"single": "gradient-single (--language-set single)",
            "subset": "gradient-subset (--language-set a,b,...)"}


@dataclass(frozen=True)
class ModelSettings:
    """What a model changes in the task settings (None = keep the task's)."""

    lr: float | None = None
    freeze_embeddings: bool | None = None
    note: str = ""


#: Per-model settings. XLM-R uses the paper's settings unchanged. The offline model
#: (multilingual-e5-small, 117M parameters of which 96M are the word embedding) is
#: small: at the paper's lr it barely learns in a short run. The lr is chosen on the
#: English dev set only (no target-language score enters the choice). Evidence: POS source
#: model, 1000 English sentences, batch 32, 64 steps, frozen word embedding, seed 1,
#: English dev F1:
#:     lr 5e-5: 60.9      lr 2e-4: 90.1      lr 5e-4: 91.4
#: (the offline model spec's probe agrees: English accuracy ~60% at 5e-5, ~92% at 2e-4).
#: 2e-4 and 5e-4 are 1.3 F1 apart in one seed; 2e-4 is kept as the smaller of the two
#: that learn, further from the edge of stability.
#: NER (the default task), the default run's English model (400 English sentences x 10
#: epochs, 130 steps of batch 32, frozen word embedding, seed 1), best English dev F1 (the
#: selection half, 200 sentences):
#:     lr 5e-5: 63.62     lr 1e-4: 65.54     lr 2e-4: 65.53     lr 5e-4: 64.15
#: (`python experiments/run.py --methods zero-shot --targets ar --max-eval-examples 20 --lr X`,
#: English dev only). 1e-4 and 2e-4 tie (0.01 F1, far inside one seed's noise), so the NER
#: default keeps 2e-4 and one lr serves both tasks. Freezing the word embedding removes
#: 96M parameters from every step (and from the surgery's dot products: see the README).
MODEL_SETTINGS: dict[str, ModelSettings] = {
    "xlm-roberta-large": ModelSettings(note="the paper's model for NER/POS: paper settings"),
    "xlm-roberta-base": ModelSettings(note="the paper's model for XNLI/TyDiQA: paper settings"),
    "me5-small": ModelSettings(
        lr=2e-4, freeze_embeddings=True,
        note="offline multilingual-e5-small (CPU demo): lr 2e-4, frozen word embedding",
    ),
}


#: The presets: the size of a run. Each is {setting: value} over the settings of
#: PRECEDENCE whose row has the "preset" source (checked at import), so adding or changing
#: a preset's setting is one edit here. A setting a preset leaves out (or gives None)
#: falls to the next source of its row: for the data caps and the targets that means
#: everything (all data, every language with data); a value given as a dict is per task.
PRESET_SETTINGS: dict[str, dict[str, object]] = {
    # The default run, a fair miniature of the paper on a laptop CPU: NER, English -> the
    # local PAN-X languages where the paper's gradient - naive gain at K = 5 is largest
    # (ar +4.2, ur +3.2 in its Table 4; zh +3.8, sw +2.8 from its second block), every
    # method that needs no target dev set, 10 epochs as in the paper so each shot is seen
    # 10 times by every method (400 English sentences + 4 x 5 shots, 14 steps per epoch),
    # the English dev set every epoch. Its time and memory are measured in the README.
    # Other tasks keep the earlier demo's shape (3 epochs over 1000 English sentences).
    "demo": {
        "methods": ("zero-shot", "ord-fs", "naive-mix-train", "gradient-mix-train"),
        "ks": (5,),
        "seeds": (1,),
        "targets": {"ner": ("ar", "sw", "ur", "zh"), "pos": ("ar", "hi", "zh"), "xnli": ("ar", "hi", "zh"),
                    "tydiqa": ("ko", "sw")},  # the local TyDiQA copy has gold answers only in en, ko, sw train.json
        "max_source_examples": {"ner": 400, "pos": 1000, "xnli": 1000, "tydiqa": 1000},
        "max_dev_examples": 200,
        "max_eval_examples": 300,
        "epochs": {"ner": 10, "pos": 3, "xnli": 3, "tydiqa": 3},
        "eval_every": {"ner": 14, "pos": 20, "xnli": 20, "tydiqa": 20},
    },
    # every target with data, all data, the paper's epochs and evaluation interval
    "paper": {"methods": METHODS, "ks": (1, 5, 10), "seeds": (1, 2, 3, 4, 5)},
}
PRESETS = tuple(PRESET_SETTINGS)

#: The harness's own defaults (the "default" source); a callable gets the settings
#: resolved so far. Its text for --help is in DEFAULT_NOTES.
DEFAULT_SETTINGS: dict[str, object] = {
    "preset": "demo",
    "task": "ner",
    "model": "me5-small",
    "source": "en",
    "language_set": "all",
    "data_dir": lambda resolved: default_data_dir(),
    "output_dir": lambda resolved: Path(f"outputs/{resolved['task']}-{Path(resolved['model']).name}"),
    "device": "cpu",
    "eval_batch_size": 64,
    "published_code": False,
    "oracle_includes_source": False,
    "surgery_per_micro_batch": False,
    "oracle_shot_subset": False,
    "tydiqa_shots_in_features": False,
}
DEFAULT_NOTES = {
    "data_dir": "$SGS_DATA_DIR, else ../shared/data/xtreme beside the repository, else the hub",
    "output_dir": "outputs/<task>-<model>",
}

#: Where every setting resolved from more than one source comes from: its sources in
#: order, the first that sets it wins (see the module's docstring for the sources). The
#: rows are resolved in this order, so a row may name a setting above it as a source.
PRECEDENCE: dict[str, tuple[str, ...]] = {
    # what to run (first: the sources of the rows below depend on the preset, task, model)
    "preset": ("flag", "default"),
    "task": ("flag", "default"),
    "model": ("flag", "default"),
    "methods": ("flag", "preset"),
    "ks": ("flag", "preset"),
    "seeds": ("flag", "preset"),
    "source": ("flag", "default"),
    "targets": ("flag", "preset"),  # neither: every language with data but the source
    "language_set": ("flag", "default"),
    "data_dir": ("flag", "default"),
    "output_dir": ("flag", "default"),
    "device": ("flag", "default"),
    "published_code": ("flag", "default"),  # switches the "code" source on
    # optimisation
    "lr": ("flag", "model", "preset", "code", "paper"),
    "batch_size": ("flag", "model", "preset", "paper"),
    "grad_accum_steps": ("flag", "model", "preset", "code", "paper"),
    "epochs": ("flag", "model", "preset", "code", "paper"),
    # target-adapting makes as many passes over each shot as one-step training
    "adapt_epochs": ("flag", "epochs"),
    "warmup_steps": ("flag", "model", "preset", "paper"),
    "weight_decay": ("flag", "model", "preset", "paper"),
    "adam_eps": ("flag", "model", "preset", "paper"),
    "max_grad_norm": ("flag", "model", "preset", "paper"),
    "freeze_embeddings": ("flag", "model", "preset", "paper"),
    # data size and evaluation
    "max_seq_length": ("flag", "model", "preset", "paper"),
    "max_source_examples": ("flag", "preset"),  # neither (or 0): all data, the paper's
    "max_dev_examples": ("flag", "preset"),
    "max_eval_examples": ("flag", "preset"),
    "eval_every": ("flag", "model", "preset", "paper"),
    "eval_batch_size": ("flag", "preset", "default"),
    "source_selection": ("flag", "model", "preset", "paper"),
    "selection": ("flag",),  # None: each method's own rule; "average": checkpoint averaging
    # surgery
    "alpha": ("flag", "model", "preset", "variant", "paper"),
    # where the paper's text and its published code differ (text: the default)
    "oracle_includes_source": ("flag", "code", "default"),
    "surgery_per_micro_batch": ("flag", "code", "default"),
    "oracle_shot_subset": ("flag", "code", "default"),
    "tydiqa_shots_in_features": ("flag", "code", "default"),
}

#: What each source is, for --help (a row's source that names a setting: DERIVED_NOTES)
SOURCE_NOTES = {
    "flag": "the command-line flag",
    "model": "the model's settings (per-model settings below)",
    "preset": "--preset's settings (presets below)",
    "code": "with --published-code, the published scripts' settings (published code below)",
    "variant": "the paper's settings for a --language-set variant of the one-step methods",
    "paper": "the task's paper settings (below)",
    "default": "the harness's default",
}
#: why a row names another setting as a source, for --help
DERIVED_NOTES = {
    "adapt_epochs": "unless --adapt-epochs is given, target-adapting (ord-FS, ord-FS+dev, mix-FT: fine-tuning "
                    "on the K shots at batch K) makes as many passes over each shot as the one-step methods, "
                    "which mix the shots into every epoch of theirs, as the paper does (the same epochs for both)",
}

#: a setting's flag attribute where it is not the setting's name
FLAG_ATTRS = {"ks": "k"}


def flag_of(name: str) -> str:
    """The command-line flag of a setting: ``ks`` -> ``--k``, ``max_seq_length`` -> ``--max-seq-length``."""
    return "--" + FLAG_ATTRS.get(name, name).replace("_", "-")


@dataclass(frozen=True)
class RunConfig:
    """Everything one invocation of ``run.py`` does, fully resolved."""

    task: str
    methods: tuple[str, ...]
    ks: tuple[int, ...]
    seeds: tuple[int, ...]
    source: str
    targets: tuple[str, ...] | None  # None = every language with data except the source (resolved later)
    data_dir: Path | None  # None = the Hugging Face hub
    model: str
    output_dir: Path
    # optimisation
    lr: float
    batch_size: int
    grad_accum_steps: int
    epochs: float
    adapt_epochs: float  # target-adapting (ord-FS, ord-FS+dev, mix-FT): ``epochs`` unless --adapt-epochs
    max_steps: int | None
    warmup_steps: int
    weight_decay: float
    adam_eps: float
    max_grad_norm: float
    freeze_embeddings: bool
    # data size and evaluation
    max_seq_length: int
    max_source_examples: int | None
    max_dev_examples: int | None
    max_eval_examples: int | None
    eval_every: int
    eval_batch_size: int
    source_selection: str  # "source-dev" (best on the English dev set every eval_every steps) or "last"
    # None: each method's rule (source_selection; last for ord-FS and mix-FT; target dev for ord-FS+dev);
    # "average": one-step and last-kept target-adapting models are the average of their parameters
    # over the last train.AVERAGE_FRACTION of training (the rule's checkpoint is scored beside it)
    selection: str | None
    # surgery
    alpha: float
    language_set: str | tuple[str, ...]  # "all", "single" or a tuple of languages
    oracle_includes_source: bool  # code: English is an oracle too, a fresh random source batch each time
    surgery_per_micro_batch: bool  # code: surgery after every micro-batch on the running accumulated gradient
    oracle_shot_subset: bool  # code: each oracle pass on a random min(K, micro-batch) subset of the shots
    tydiqa_shots_in_features: bool
    published_code: bool  # the "code" source was on
    # where and how
    device: str
    model_cache_dir: Path | None = None
    preset: str = "demo"
    progress: bool = True
    save_models: bool = False

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.grad_accum_steps

    def result_settings(self) -> dict:
        """The settings that change results: a resumed run must match them.

        Methods, K values and seeds are left out: adding them only adds cells.
        """
        skip = {"methods", "ks", "seeds", "output_dir", "progress", "eval_batch_size", "device",
                "model_cache_dir", "preset", "data_dir", "save_models"}
        out = {}
        for f in dataclasses.fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        # the evaluation protocol, not a setting: a run made before evaluation sets dropped the
        # examples equal to a shot by content (only by uid) has not this key, and is not resumed
        out["eval_excludes_shot_content"] = True
        return out


def default_data_dir() -> Path | None:
    """``$SGS_DATA_DIR``, else ``../shared/data/xtreme`` beside the repository, else None (hub)."""
    env = os.environ.get("SGS_DATA_DIR")
    if env:
        return Path(env)
    beside = REPO_ROOT.parent / "shared" / "data" / "xtreme"
    return beside if beside.is_dir() else None


def model_settings(model: str) -> ModelSettings:
    """The per-model settings of ``model`` (an alias, a hub name or a local dir)."""
    if model in MODEL_SETTINGS:
        return MODEL_SETTINGS[model]
    name = Path(model).name
    if name in MODEL_SETTINGS:
        return MODEL_SETTINGS[name]
    return ModelSettings(note="unknown model: paper settings")


def language_set_variant(language_set) -> str | None:
    """The key of ``TaskSettings.variants`` for a language set: None for "all" (the paper's method)."""
    if language_set in (None, "all"):
        return None
    return "single" if language_set == "single" else "subset"




# ---------------------------------------------------------------------- resolution

_ALL = object()  # --targets all: every language with data (beats the preset's targets)

#: how a flag's raw value becomes the setting's value (others: as argparse gives it)
_FLAG_PARSERS = {
    "methods": lambda text: parse_list(text, "--methods"),
    "ks": lambda text: parse_list(text, "--k", int),
    "seeds": lambda text: parse_list(text, "--seeds", int),
    "targets": lambda text: _ALL if text == "all" else parse_list(text, "--targets"),
    "language_set": lambda text: text if text in ("all", "single") else parse_list(text, "--language-set"),
    "selection": lambda text: None if text == "method" else text,
    "data_dir": Path,
    "output_dir": Path,
}


def _source_value(source: str, name: str, args, resolved: dict):
    """What ``source`` says for setting ``name`` (None: it does not set it)."""
    if source == "flag":
        raw = getattr(args, FLAG_ATTRS.get(name, name), None)
        if raw is None or (raw == "" and name not in ("ks", "seeds", "methods", "targets")):  # empty: an error
            return None
        parse = _FLAG_PARSERS.get(name)
        return parse(raw) if parse else raw
    if source == "model":
        return getattr(model_settings(resolved["model"]), name, None)
    if source == "preset":
        value = PRESET_SETTINGS[resolved["preset"]].get(name)
        return value.get(resolved["task"]) if isinstance(value, dict) else value
    if source == "variant":
        variants = PAPER_SETTINGS[resolved["task"]].variants
        return variants.get(language_set_variant(resolved["language_set"]), {}).get(name)
    if source == "code":
        return CODE_SETTINGS[resolved["task"]].get(name) if resolved["published_code"] else None
    if source == "paper":
        return getattr(PAPER_SETTINGS[resolved["task"]], name, None)
    if source == "default":
        value = DEFAULT_SETTINGS.get(name)
        return value(resolved) if callable(value) else value
    if source in resolved:  # another setting, resolved above (check_tables)
        return resolved[source]
    raise KeyError(f"PRECEDENCE[{name!r}]: unknown source {source!r} (or a setting not resolved above it)")


def resolve_settings(args) -> dict:
    """Every setting of :data:`PRECEDENCE`, from the first of its sources that sets it, checked.

    Raises ``ValueError`` naming the flag for a bad value.
    """
    resolved: dict = {}
    for name, sources in PRECEDENCE.items():
        value = None
        for source in sources:
            value = _source_value(source, name, args, resolved)
            if value is not None:
                break
        resolved[name] = _check(name, value, resolved)
    return resolved


_CASTS = {"lr": float, "batch_size": int, "grad_accum_steps": int, "epochs": float, "adapt_epochs": float,
          "warmup_steps": int, "weight_decay": float, "adam_eps": float, "max_grad_norm": float,
          "freeze_embeddings": bool, "max_seq_length": int, "max_source_examples": int, "max_dev_examples": int,
          "max_eval_examples": int, "eval_every": int, "eval_batch_size": int, "alpha": float,
          "published_code": bool, "oracle_includes_source": bool, "surgery_per_micro_batch": bool,
          "oracle_shot_subset": bool, "tydiqa_shots_in_features": bool}


#: the settings whose sources may all leave them unset (None: every language, the hub, all data)
_MAY_BE_NONE = {"targets", "data_dir", "max_source_examples", "max_dev_examples", "max_eval_examples", "selection"}


def _check(name: str, value, r: dict):
    """``value`` of setting ``name`` cast and checked against the settings resolved so far ``r``."""
    if value is None and name not in _MAY_BE_NONE:
        sources = " > ".join(PRECEDENCE[name])
        raise ValueError(f"{flag_of(name)}: none of its sources ({sources}) sets it; give the flag")
    if value is not None and name in _CASTS:
        value = _CASTS[name](value)
    if name == "preset" and value not in PRESET_SETTINGS:
        raise ValueError(f"--preset: unknown preset {value!r} (choose from {', '.join(PRESETS)})")
    if name == "task" and value not in TASKS:
        raise ValueError(f"--task: unknown task {value!r} (choose from {', '.join(TASKS)})")
    if name == "methods":
        unknown = [m for m in value if m not in METHODS + ANALYSIS_METHODS]
        if unknown:
            raise ValueError(f"--methods: unknown method(s) {', '.join(unknown)} "
                             f"(choose from {', '.join(METHODS + ANALYSIS_METHODS)})")
    if name == "ks" and any(k < 1 for k in value):
        raise ValueError(f"--k: K must be >= 1, got {','.join(map(str, value))}")
    if name == "targets":
        value = None if value is _ALL else value
        if value is not None and r["source"] in value:
            raise ValueError(f"--targets: the source language {r['source']!r} cannot also be a target")
    if name == "language_set" and isinstance(value, tuple) and r["targets"] is not None:
        outside = [lang for lang in value if lang not in r["targets"]]
        if outside:
            raise ValueError(f"--language-set: {', '.join(outside)} not among --targets {','.join(r['targets'])}")
    if name == "data_dir" and value is not None and not value.is_dir():
        raise ValueError(f"--data-dir: {value} is not a directory")
    if name == "device" and value not in ("cpu", "cuda") and not value.startswith("cuda:"):
        raise ValueError(f"--device: expected cpu or cuda, got {value!r}")
    if name == "device" and value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {value}: this torch ({torch.__version__}) sees no CUDA device "
                             f"(CUDA build: {torch.version.cuda or 'no'}); use --device cpu or a CUDA machine")
    if name == "grad_accum_steps":
        batch_size = r["batch_size"]
        if batch_size < 1 or value < 1 or batch_size % value:
            raise ValueError(f"--batch-size {batch_size} must be a positive multiple of --grad-accum-steps {value}")
    if name in ("lr", "epochs", "adapt_epochs", "adam_eps") and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{flag_of(name)} must be positive, got {value}")
    if name in ("weight_decay", "max_grad_norm") and not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{flag_of(name)} must be a finite number >= 0, got {value}"
                         + (" (0 = no clipping)" if name == "max_grad_norm" else ""))
    if name == "warmup_steps" and value < 0:
        raise ValueError(f"--warmup-steps must be >= 0, got {value}")
    if name in ("eval_batch_size", "max_seq_length") and value < 1:
        raise ValueError(f"{flag_of(name)} must be >= 1, got {value}")
    if name == "eval_every" and value < 1:
        raise ValueError(f"--eval-every must be >= 1, got {value}")
    if name.startswith("max_") and name.endswith("_examples") and value is not None and value <= 0:
        value = None  # 0 = all (lets a user lift the demo's cap)
    if name == "source_selection" and value not in ("source-dev", "last"):
        raise ValueError(f"--source-selection: expected source-dev or last, got {value!r}")
    if name == "selection" and value not in (None, "average"):
        raise ValueError(f"--selection: expected method or average, got {value!r}")
    if name == "alpha" and not 0.0 <= value <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {value}")
    return value


def resolve_config(args) -> RunConfig:
    """Turn parsed flags (an ``argparse.Namespace``; unset flags are None) into a RunConfig.

    Every setting of :data:`PRECEDENCE` comes from its row's sources; the rest are flags
    only. Raises ``ValueError`` naming the flag for a bad value.
    """
    get = lambda name: getattr(args, name, None)  # noqa: E731
    r = resolve_settings(args)
    max_steps = get("max_steps")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps}")
    cache = get("model_cache_dir")
    return RunConfig(
        **r,
        max_steps=max_steps,
        model_cache_dir=Path(cache) if cache else None,
        progress=not get("no_progress"),
        save_models=bool(get("save_models")),
    )


def check_tables() -> None:
    """The tables agree with :data:`PRECEDENCE`; run at import.

    Every value of a preset, a model or a variant is a setting whose row reads that source
    (else it would be silently ignored), every source of a row is known, and a setting
    used as a source is resolved above the row that uses it. Raises ``ValueError``.
    """
    problems = []

    def require(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    def reads(name: str, source: str) -> bool:
        return source in PRECEDENCE.get(name, ())

    for preset, values in PRESET_SETTINGS.items():
        for name in values:
            require(reads(name, "preset"), f"PRESET_SETTINGS[{preset!r}][{name!r}]: its PRECEDENCE row has no 'preset'")
    for model, settings in MODEL_SETTINGS.items():
        for f in dataclasses.fields(settings):
            if f.name != "note" and getattr(settings, f.name) is not None:
                require(reads(f.name, "model"),
                        f"MODEL_SETTINGS[{model!r}].{f.name}: its PRECEDENCE row has no 'model'")
    for task, values in CODE_SETTINGS.items():
        for name in values:
            require(reads(name, "code"), f"CODE_SETTINGS[{task!r}][{name!r}]: its PRECEDENCE row has no 'code'")
    for task, settings in PAPER_SETTINGS.items():
        for variant, values in settings.variants.items():
            require(variant in VARIANTS, f"PAPER_SETTINGS[{task!r}].variants: unknown variant {variant!r}")
            for name in values:
                require(reads(name, "variant"),
                        f"PAPER_SETTINGS[{task!r}].variants[{variant!r}][{name!r}]: "
                        "its PRECEDENCE row has no 'variant'")
    order = list(PRECEDENCE)
    for name, sources in PRECEDENCE.items():
        for source in sources:
            derived = source in order and order.index(source) < order.index(name) and name in DERIVED_NOTES
            require(source in SOURCE_NOTES or derived,
                    f"PRECEDENCE[{name!r}]: unknown source {source!r} (a setting as a source must be resolved "
                    "above the row and explained in DERIVED_NOTES)")
        if "default" in sources:
            require(name in DEFAULT_SETTINGS, f"PRECEDENCE[{name!r}] reads 'default'; DEFAULT_SETTINGS has none")
    if problems:
        raise ValueError("config tables: " + "; ".join(problems))


check_tables()


# ---------------------------------------------------------------------- --help text

def _value_text(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _wrap(text: str, indent: str = "  ", hanging: str = "    ", width: int = 92) -> str:
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=hanging,
                         break_on_hyphens=False)


def precedence_help() -> str:
    """The text of :data:`PRECEDENCE` for ``run.py --help``: one line per group of flags with
    the same sources (in the table's order), then what each source is. Read from the
    tables when called."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, sources in PRECEDENCE.items():
        groups.setdefault(sources, []).append(name)
    lines = ["where each setting comes from (its sources in order: the first that sets it wins):"]
    chains = {sources: " > ".join(sources) for sources in groups}
    width = max(map(len, chains.values())) + 2
    for sources, names in groups.items():
        lines.append(_wrap(" ".join(flag_of(n) for n in names), indent="  " + chains[sources].ljust(width),
                           hanging=" " * (2 + width)))
    lines.append("the sources:")
    used = [s for s in SOURCE_NOTES if any(s in sources for sources in PRECEDENCE.values())]
    for source in used:
        note = SOURCE_NOTES[source]
        if source == "variant":
            note += ": " + "; ".join(
                f"{VARIANTS[v]}: " + (", ".join(
                    f"{task} {k} {_value_text(x)}"
                    for task, s in PAPER_SETTINGS.items() for k, x in s.variants.get(v, {}).items()) or "none")
                + " (other tasks: the task's)"
                for v in VARIANTS)
        if source == "code":
            note += ": " + "; ".join(f"{task} " + ", ".join(f"{flag_of(k)} {_value_text(x)}" for k, x in values.items())
                                     for task, values in CODE_SETTINGS.items())
        if source == "default":
            note += ": " + ", ".join(f"{flag_of(n)} {DEFAULT_NOTES.get(n) or _value_text(DEFAULT_SETTINGS[n])}"
                                     for n, sources in PRECEDENCE.items() if "default" in sources)
        lines.append(_wrap(f"{source}: {note}"))
    for name, sources in PRECEDENCE.items():
        for source in sources:
            if source not in SOURCE_NOTES:  # another setting
                lines.append(_wrap(f"{source} (in {flag_of(name)}): the resolved {flag_of(source)}: "
                                   + DERIVED_NOTES.get(name, "")))
    return "\n".join(lines)


def presets_help() -> str:
    """Each preset's settings, as flags, for ``run.py --help``."""
    lines = [_wrap("a setting a preset leaves out comes from the next source of its row; no --targets: "
                   "every language with data; no cap: all data", indent="  ", hanging="  ")]
    for preset, values in PRESET_SETTINGS.items():
        parts = []
        for name, value in values.items():
            if isinstance(value, dict):
                value = "; ".join(f"{task} {_value_text(v)}" for task, v in value.items())
            parts.append(f"{flag_of(name)} {_value_text(value)}")
        lines.append(_wrap(f"{preset}: " + ", ".join(parts)))
    return "\n".join(lines)
