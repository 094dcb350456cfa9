"""Task data: example types, one reader per file format, the data-dir layout, and a hub loader."""
from .examples import Answer, DataFormatError, Example, NLIExample, QAExample, TaggingExample, make_uid
from .layout import available_languages, available_splits, has_split, split_exists, split_file, split_path, task_root
from .squad_json import read_squad_json
from .tagging_tsv import read_tagging_tsv
from .xnli_tsv import XNLI_LABELS, read_xnli_tsv

__all__ = [
    "Answer", "DataFormatError", "Example", "NLIExample", "QAExample", "TaggingExample", "make_uid",
    "available_languages", "available_splits", "has_split", "split_exists", "split_file", "split_path", "task_root",
    "read_squad_json", "read_tagging_tsv", "read_xnli_tsv", "XNLI_LABELS",
]
