"""Load the same tasks from the Hugging Face hub with ``datasets`` (needs network access).

This mirrors the local readers: it returns the same example types, with uids prefixed
``hub:``. Sources: ``google/xtreme`` configs ``PAN-X.<lang>``, ``udpos.<Language>``,
``XNLI`` (dev/test, filtered by language) and ``tydiqa`` (filtered by the language name
that starts every TyDiQA id); the English XNLI training set is MultiNLI
(``nyu-mll/multi_nli``), as in XTREME. Split names are the local ones:
``train``/``dev``/``test``.

The machines this project is tested on cannot reach the hub, so this module is exercised
only where the hub is reachable; everything else reads local files.
"""
from __future__ import annotations

from .examples import Answer, DataFormatError, NLIExample, QAExample, TaggingExample, make_uid

XTREME = "google/xtreme"
_HUB_SPLIT = {"train": "train", "dev": "validation", "test": "test"}

#: XTREME's udpos config names (``udpos.<Name>``; "Afrikans" is the hub's own spelling).
UDPOS_CONFIG_NAMES = {
    "af": "Afrikans", "ar": "Arabic", "eu": "Basque", "bg": "Bulgarian", "nl": "Dutch",
    "en": "English", "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German",
    "el": "Greek", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean", "zh": "Chinese",
    "mr": "Marathi", "fa": "Persian", "pt": "Portuguese", "ru": "Russian", "es": "Spanish",
    "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish",
    "ur": "Urdu", "vi": "Vietnamese", "yo": "Yoruba",
}
#: UD languages that XTREME evaluates only (no train/dev split).
UDPOS_TEST_ONLY = frozenset({"tl", "th", "yo"})
#: TyDiQA ids start with the language's English name.
TYDIQA_ID_PREFIX = {
    "ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}


def hub_has_split(task_dir: str, lang: str, split: str) -> bool:
    """Whether the hub source has this split (known from XTREME's layout, without a download)."""
    if task_dir == "panx":
        return split in _HUB_SPLIT
    if task_dir == "udpos":
        return lang in UDPOS_CONFIG_NAMES and (split == "test" or lang not in UDPOS_TEST_ONLY)
    if task_dir == "xnli":
        return split in ("dev", "test") or (split == "train" and lang == "en")
    if task_dir == "tydiqa":
        return lang in TYDIQA_ID_PREFIX and split in ("train", "dev")
    return False


def load_hub_split(task_dir: str, lang: str, split: str):
    """Examples of one task/language/split from the hub (``task_dir`` as in the data dir)."""
    if not hub_has_split(task_dir, lang, split):
        raise DataFormatError(f"the hub has no {split!r} split of {task_dir} for language {lang!r}")
    from datasets import load_dataset  # imported here: only this path needs it

    if task_dir in ("panx", "udpos"):
        if task_dir == "panx":
            config, column = f"PAN-X.{lang}", "ner_tags"
        else:
            config, column = f"udpos.{UDPOS_CONFIG_NAMES[lang]}", "pos_tags"
        ds = load_dataset(XTREME, config, split=_HUB_SPLIT[split])
        names = ds.features[column].feature.names
        return [
            TaggingExample(make_uid(task_dir, lang, split, i, hub=True), lang,
                           tuple(row["tokens"]), tuple(names[t] for t in row[column]))
            for i, row in enumerate(ds)
        ]
    if task_dir == "xnli":
        if split == "train":
            ds = load_dataset("nyu-mll/multi_nli", split="train")
            names = ds.features["label"].names
            rows = ((r["premise"], r["hypothesis"], names[r["label"]]) for r in ds if r["label"] >= 0)
        else:
            ds = load_dataset(XTREME, "XNLI", split=_HUB_SPLIT[split]).filter(lambda r: r["language"] == lang)
            rows = ((r["sentence1"], r["sentence2"], r["gold_label"]) for r in ds)
        return [
            NLIExample(make_uid(task_dir, lang, split, i, hub=True), lang, p, h, label)
            for i, (p, h, label) in enumerate(rows)
        ]
    if task_dir == "tydiqa":
        prefix = TYDIQA_ID_PREFIX[lang] + "-"
        ds = load_dataset(XTREME, "tydiqa", split=_HUB_SPLIT[split]).filter(lambda r: r["id"].startswith(prefix))
        return [
            QAExample(make_uid(task_dir, lang, split, i, hub=True), lang, r["id"], r["question"], r["context"],
                      tuple(Answer(t, s) for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"]) if t),
                      r.get("title") or "")
            for i, r in enumerate(ds)
        ]
    raise DataFormatError(f"unknown task folder {task_dir!r}")
