"""Dataset archives: GTZAN's `genres.tar.gz` fetched from the Hub, and any `.tar.gz` / `.tgz` / `.zip` extracted
safely, once.

- `fetch_gtzan()` downloads `data/genres.tar.gz` from the Hub dataset repo `marsyas/gtzan` (its loading script no longer
  runs with `datasets` >= 4, but the archive is a plain file of the repo) through `huggingface_hub` into the Hugging
  Face cache, with a progress bar, and extracts it next to the download.
- `extract_archive(archive, target)` refuses members with an absolute path or `..`, links of any kind, device files
  and a file and a folder of one name, naming the member; stops an archive that expands beyond `max_ratio` times its
  own size or `max_bytes` in all (a zip bomb), naming the member; extracts into a fresh temporary folder beside
  `target` and renames it into place only when complete, so an interrupted extraction is never taken for a complete
  one. It never deletes a folder it did not create: an existing non-empty `target` without this code's completion
  marker is refused. When two processes extract one archive, the second to finish takes the first one's folder.
- A damaged, truncated or non-archive file is reported as such, naming the file.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath


GTZAN_REPO_ID = "marsyas/gtzan"
GTZAN_FILENAME = "data/genres.tar.gz"
# The revision of the repo the archive is taken from; pass `revision=` (or `--gtzan_revision`) a commit sha to pin it.
GTZAN_REVISION = "main"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
COMPLETE_MARKER = ".genremert-extracted"
# Zip-bomb limits: an archive may expand to at most MAX_RATIO times its own size, and to MAX_BYTES in all. Audio barely
# compresses (GTZAN's genres.tar.gz: 1.1×), so these leave every real corpus room and stop a bomb early.
MAX_RATIO = 100.0
MAX_BYTES = 512 * 1024**3
# What a damaged, truncated or foreign file raises while it is read as an archive.
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError)


class UnsafeArchiveError(ValueError):
    """An archive member that would write outside the target folder, a link or device file, or a zip bomb."""


class DamagedArchiveError(ValueError):
    """A file that cannot be read as an archive: truncated, damaged, lying about its sizes, or not an archive."""


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


def _check_file_folder_clashes(archive: Path, entries: list[tuple[str, bool]]) -> None:
    """A file and a folder of one name (`a` and `a/b`), or one file twice, cannot both be extracted. `entries` are
    `(member name, is a directory)`."""
    files, folders = set(), set()
    for name, is_dir in entries:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        folders.update("/".join(parts[:i]) for i in range(1, len(parts) + int(is_dir)))
    for name, is_dir in entries:
        if is_dir:
            continue
        clean = "/".join(PurePosixPath(name.replace("\\", "/")).parts)
        if clean in folders:
            raise UnsafeArchiveError(
                f"{archive}: member {name!r} is a file, and other members use {clean!r} as a folder; refusing to extract."
            )
        if clean in files:
            raise UnsafeArchiveError(f"{archive}: member {name!r} appears twice; refusing to extract.")
        files.add(clean)


def _copy_limited(source, sink, name: str, archive: Path, budget: list[int], limit_text: str) -> None:
    """Copy one member, stopping as soon as the archive's expansion budget is spent (the declared sizes may lie)."""
    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            return
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise UnsafeArchiveError(
                f"{archive}: member {name!r} expands the archive beyond {limit_text} (a zip bomb?); refusing to extract. "
                "Pass max_ratio= / max_bytes= to extract_archive if the archive is genuine."
            )
        sink.write(chunk)


def extract_archive(archive, target, max_ratio: float = MAX_RATIO, max_bytes: int = MAX_BYTES) -> Path:
    """Extract `archive` into the folder `target` (once: a complete earlier extraction is reused). Returns `target`.

    Refused, naming the member: unsafe names and kinds (see the module docstring), and expansion beyond `max_ratio`
    times the archive's size or `max_bytes` in all. Refused, naming the folder: a non-empty `target` that this code did
    not complete (no completion marker): it is never deleted. A damaged or foreign file raises `DamagedArchiveError`."""
    archive, target = Path(archive), Path(target)
    if (target / COMPLETE_MARKER).is_file():
        return target
    if target.exists():
        if not target.is_dir() or any(target.iterdir()):
            raise FileExistsError(
                f"{target} exists and is not an extraction of {archive} by this code (no {COMPLETE_MARKER} marker); "
                "refusing to overwrite or delete it. Move it away, or give the extracted folder itself as --data_dir."
            )
        target.rmdir()  # an empty folder holds nothing to lose
    try:
        kind, opened, members = _members(archive)
    except UnsafeArchiveError:
        raise
    except ARCHIVE_ERRORS as error:
        raise DamagedArchiveError(
            f"{archive}: not a readable archive ({type(error).__name__}: {error}); is the download complete? "
            f"Expected one of {', '.join(ARCHIVE_SUFFIXES)}."
        ) from error
    _check_file_folder_clashes(
        archive,
        [(info.filename, info.is_dir()) for info in members]
        if kind == "zip"
        else [(member.name, member.isdir()) for member in members],
    )
    limit = min(max_bytes, int(max_ratio * max(archive.stat().st_size, 1)))
    limit_text = f"{limit:,} bytes ({max_ratio:g}× its {archive.stat().st_size:,} bytes, at most {max_bytes:,})"
    budget = [limit]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))  # ours alone
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
                try:
                    with open_member() as source, open(destination, "wb") as sink:
                        _copy_limited(source, sink, name, archive, budget, limit_text)
                except UnsafeArchiveError:
                    raise
                except ARCHIVE_ERRORS as error:
                    if isinstance(error, OSError) and error.errno is not None and not isinstance(error, EOFError):
                        raise  # a full disk or a permission problem: not the archive's fault
                    raise DamagedArchiveError(
                        f"{archive}: member {name!r} cannot be read ({type(error).__name__}: {error}); the archive is "
                        "truncated or damaged. Download it again."
                    ) from error
        (partial / COMPLETE_MARKER).write_text(str(archive), encoding="utf-8")
        try:
            os.replace(partial, target)
        except OSError:
            if (target / COMPLETE_MARKER).is_file():  # another process completed the same extraction meanwhile
                return target
            raise
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
    cache, with a progress bar), extracted once beside it. Returns the extracted folder (it holds `genres/`).

    Without a connection (offline, `HF_HUB_OFFLINE=1`, DNS or proxy failure, timeout) and nothing cached, one
    `FileNotFoundError` says so and how to give the data instead; a `revision` the repo does not have is a
    `ValueError` naming it."""
    from importlib import import_module

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RevisionNotFoundError

    # What huggingface_hub raises when it cannot reach the Hub: its own offline errors (a download ends in
    # LocalEntryNotFoundError when nothing is cached) and the connection errors of the HTTP client it uses.
    unreachable = [LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module_name, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests.exceptions", ("ConnectionError", "Timeout")),
    ):
        try:
            module = import_module(module_name)
        except ImportError:
            continue
        unreachable += [getattr(module, name) for name in names if hasattr(module, name)]
    try:
        archive = huggingface_hub.hf_hub_download(
            GTZAN_REPO_ID,
            GTZAN_FILENAME,
            repo_type="dataset",
            revision=revision or GTZAN_REVISION,
            cache_dir=cache_dir,
            token=token,
        )
    except RevisionNotFoundError:
        raise ValueError(
            f"--gtzan_revision {revision!r} is not a revision of the Hub dataset {GTZAN_REPO_ID}: expected a branch, "
            "tag or commit of it (default: main)."
        ) from None
    except tuple(unreachable) as error:
        cause = error
        while cause.__cause__ is not None:  # the connection error under the Hub's generic one
            cause = cause.__cause__
        if isinstance(cause, OfflineModeIsEnabled):
            reason = "offline mode: HF_HUB_OFFLINE is set and the archive is not in the Hugging Face cache"
        else:
            reason = f"{type(cause).__name__}: {cause}"
        raise FileNotFoundError(
            f"could not reach the Hugging Face Hub to download GTZAN ({reason}): give --data_dir <folder with genres/ "
            f"or genres.tar.gz>, or go online (HF_HUB_OFFLINE unset) once, to fetch {GTZAN_FILENAME} of the Hub "
            f"dataset {GTZAN_REPO_ID} into the Hugging Face cache."
        ) from None
    return extract_archive(archive, extracted_folder(Path(archive).resolve()))
