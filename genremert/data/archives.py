"""Dataset archives: GTZAN's `genres.tar.gz` fetched from the Hub, and any `.tar.gz` / `.tgz` / `.zip` extracted
safely, once.

- `fetch_gtzan()` downloads `data/genres.tar.gz` from the Hub dataset repo `marsyas/gtzan` (its loading script no longer
  runs with `datasets` >= 4, but the archive is a plain file of the repo) through `huggingface_hub` into the Hugging
  Face cache, with a progress bar, and extracts it next to the download.
- `extract_archive(archive, target)` refuses members with an absolute path or `..`, links of any kind and device
  files, naming the member; extracts into a temporary folder beside `target` and renames it into place only when
  complete, so an interrupted extraction is never taken for a complete one.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath


GTZAN_REPO_ID = "marsyas/gtzan"
GTZAN_FILENAME = "data/genres.tar.gz"
# The revision of the repo the archive is taken from; pass `revision=` (or `--gtzan_revision`) a commit sha to pin it.
GTZAN_REVISION = "main"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
COMPLETE_MARKER = ".genremert-extracted"


class UnsafeArchiveError(ValueError):
    """An archive member that would write outside the target folder, or a link or device file."""


def is_archive(path) -> bool:
    return Path(path).is_file() and str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _check_name(archive: Path, name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract the archive.")
    if ".." in pure.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the folder (..); refusing to extract.")


def _members(archive: Path):
    """`(kind, opened archive, members)` after checking every member."""
    if zipfile.is_zipfile(archive):
        opened = zipfile.ZipFile(archive)
        for info in opened.infolist():
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if mode and (mode & 0o170000) == 0o120000:
                raise UnsafeArchiveError(
                    f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract."
                )
        return "zip", opened, opened.infolist()
    opened = tarfile.open(archive)
    members = opened.getmembers()
    for member in members:
        _check_name(archive, member.name)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a link; refusing to extract the archive.")
        if not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or special file; refusing.")
    return "tar", opened, members


def extract_archive(archive, target) -> Path:
    """Extract `archive` into the folder `target` (once: a complete earlier extraction is reused). Returns `target`."""
    archive, target = Path(archive), Path(target)
    if (target / COMPLETE_MARKER).is_file():
        return target
    if target.exists():  # an interrupted extraction: start again
        shutil.rmtree(target)
    kind, opened, members = _members(archive)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        with opened:
            if kind == "zip":
                entries = [(info.filename, info.is_dir(), lambda info=info: opened.open(info)) for info in members]
            else:
                entries = [
                    (member.name, member.isdir(), lambda member=member: opened.extractfile(member))
                    for member in members
                ]
            for name, is_dir, open_member in entries:
                destination = partial / name
                if is_dir:
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with open_member() as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        (partial / COMPLETE_MARKER).write_text(str(archive), encoding="utf-8")
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target


def extracted_folder(archive) -> Path:
    """Where an archive given as `--data_dir` is extracted: `<archive name>.extracted/` beside it."""
    archive = Path(archive)
    return archive.with_name(archive.name + ".extracted")


def fetch_gtzan(revision: str | None = None, cache_dir: str | None = None, token=None) -> Path:
    """GTZAN from the Hub: `data/genres.tar.gz` of `marsyas/gtzan` (1.2 GB, downloaded once into the Hugging Face
    cache, with a progress bar), extracted once beside it. Returns the extracted folder (it holds `genres/`)."""
    from huggingface_hub import hf_hub_download

    archive = hf_hub_download(
        GTZAN_REPO_ID,
        GTZAN_FILENAME,
        repo_type="dataset",
        revision=revision or GTZAN_REVISION,
        cache_dir=cache_dir,
        token=token,
    )
    return extract_archive(archive, extracted_folder(Path(archive).resolve()))
