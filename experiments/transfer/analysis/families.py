"""Language families, for ordering languages in figures and tables.

``FAMILIES`` maps an XTREME language code (ISO 639-1 where there is one) to its
top-level family and a genus (the branch below it), after Glottolog 4 and WALS; it
covers every language of XTREME and XTREME-R and some more. ``order_languages``
sorts languages by family (in ``FAMILY_ORDER``), then genus (in ``GENUS_ORDER``
within Indo-European, else alphabetically), then code, so related languages sit next
to each other, as in the paper's Figure 1. A language not in the table goes last, in
alphabetical order, under the family ``"unknown"``.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple


class Family(NamedTuple):
    family: str
    genus: str


def _table(family: str, genus: str, codes: str) -> dict[str, Family]:
    return {code: Family(family, genus) for code in codes.split()}


FAMILIES: dict[str, Family] = {
    **_table("Indo-European", "Germanic", "en de nl af sv da no nb nn is fy lb yi fo"),
    **_table("Indo-European", "Romance", "fr es it pt ro ca gl oc la"),
    **_table("Indo-European", "Greek", "el"),
    **_table("Indo-European", "Slavic", "ru uk be pl cs sk bg mk sr hr bs sl"),
    **_table("Indo-European", "Baltic", "lt lv"),
    **_table("Indo-European", "Celtic", "ga cy gd br"),
    **_table("Indo-European", "Albanian", "sq"),
    **_table("Indo-European", "Armenian", "hy"),
    **_table("Indo-European", "Iranian", "fa ku ckb ps tg os"),
    **_table("Indo-European", "Indo-Aryan", "hi ur bn mr gu pa ne si as or sd sa"),
    **_table("Uralic", "Finnic", "fi et"),
    **_table("Uralic", "Ugric", "hu"),
    **_table("Turkic", "Turkic", "tr az kk ky uz tt ug tk ba cv"),
    **_table("Mongolic", "Mongolic", "mn"),
    **_table("Afro-Asiatic", "Semitic", "ar he am mt"),
    **_table("Afro-Asiatic", "Chadic", "ha"),
    **_table("Afro-Asiatic", "Cushitic", "so om"),
    **_table("Atlantic-Congo", "Bantu", "sw zu xh rw sn ny"),
    **_table("Atlantic-Congo", "Defoid", "yo"),
    **_table("Atlantic-Congo", "Igboid", "ig"),
    **_table("Atlantic-Congo", "Atlantic", "wo"),
    **_table("Dravidian", "Dravidian", "ta te ml kn"),
    **_table("Sino-Tibetan", "Sinitic", "zh yue"),
    **_table("Sino-Tibetan", "Tibeto-Burman", "my bo"),
    **_table("Tai-Kadai", "Tai", "th lo"),
    **_table("Austroasiatic", "Vietic", "vi"),
    **_table("Austroasiatic", "Khmer", "km"),
    **_table("Austronesian", "Malayo-Polynesian", "id ms jv tl su mg ceb"),
    **_table("Japonic", "Japonic", "ja"),
    **_table("Koreanic", "Koreanic", "ko"),
    **_table("Kartvelian", "Kartvelian", "ka"),
    **_table("Basque", "Basque", "eu"),
    **_table("Quechuan", "Quechuan", "qu"),
    **_table("Creole", "French-based creole", "ht"),
}

#: Family order: Indo-European first (English's family), then roughly by geography.
FAMILY_ORDER = ("Indo-European", "Uralic", "Basque", "Kartvelian", "Turkic", "Mongolic", "Afro-Asiatic",
                "Atlantic-Congo", "Dravidian", "Sino-Tibetan", "Tai-Kadai", "Austroasiatic", "Austronesian",
                "Japonic", "Koreanic", "Quechuan", "Creole")

#: Branch order inside Indo-European: west to east.
GENUS_ORDER = ("Germanic", "Romance", "Celtic", "Greek", "Albanian", "Baltic", "Slavic", "Armenian", "Iranian",
               "Indo-Aryan")

UNKNOWN = Family("unknown", "unknown")


def family_of(lang: str) -> Family:
    """The family and genus of ``lang`` (``UNKNOWN`` if it is not in the table)."""
    return FAMILIES.get(lang, UNKNOWN)


def _sort_key(lang: str) -> tuple:
    fam = family_of(lang)
    if fam is UNKNOWN:
        return (len(FAMILY_ORDER) + 1, 0, "", lang)
    family_rank = FAMILY_ORDER.index(fam.family) if fam.family in FAMILY_ORDER else len(FAMILY_ORDER)
    genus_rank = GENUS_ORDER.index(fam.genus) if fam.genus in GENUS_ORDER else len(GENUS_ORDER)
    return (family_rank, genus_rank, fam.genus, lang)


def order_languages(langs: Iterable[str], first: str | None = None) -> list[str]:
    """``langs`` ordered by family, genus, then code; ``first`` (e.g. the source) leads if present."""
    langs = list(dict.fromkeys(langs))
    ordered = sorted((lang for lang in langs if lang != first), key=_sort_key)
    return ([first] if first in langs else []) + ordered
