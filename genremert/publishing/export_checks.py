"""What may leave this machine when a model is published: no pickle of any kind, only allow-listed files, each holding
what its type promises."""

import json
import zipfile
from pathlib import Path


# Suffixes of pickle-capable formats. None of them is ever copied into the export folder or uploaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


class ExportError(RuntimeError):
    """The export folder could not be built or failed verification (nothing was uploaded)."""


def find_pickle_files(folder: Path) -> list:
    """Every file under `folder` that could hold a pickle: by suffix, by pickle header bytes, or a zip
    archive (torch.save format) containing a `.pkl` member."""
    found = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        if path.suffix.lower() in PICKLE_SUFFIXES:
            found.append(path)
            continue
        with open(path, "rb") as handle:
            head = handle.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2-5 opcode PROTO
            found.append(path)
        elif head == b"PK" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith(".pkl") for name in archive.namelist()):
                    found.append(path)
    return found


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The only files an export folder may hold: name patterns, each with the content check of its type.
EXPORT_ALLOW_LIST = (
    ("config.json", "json"),
    ("preprocessor_config.json", "json"),
    ("model.safetensors", "safetensors"),
    ("README.md", "text"),
    ("*.py", "text"),
    ("*_results.json", "json"),
    ("confusion_matrix_*.json", "json"),
    ("classification_report_*.json", "json"),
    ("*_tag_report.json", "json"),
    ("confusion_matrix_*.png", "png"),
)


def _content_problem(path: Path, kind: str) -> str | None:
    """Why `path` is not a file of `kind` (`json`, `png`, `safetensors`, `text`), or None."""
    data = path.read_bytes()
    if kind == "png":
        return None if data.startswith(PNG_SIGNATURE) else "not a PNG image (no PNG signature)"
    if kind == "safetensors":
        if len(data) < 8:
            return "not a safetensors file (shorter than its header length)"
        header_length = int.from_bytes(data[:8], "little")
        try:
            header = json.loads(data[8 : 8 + header_length].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "not a safetensors file (its header is not JSON)"
        return None if isinstance(header, dict) and 8 + header_length <= len(data) else "a damaged safetensors file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if kind == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"not valid JSON ({error})"
    return None


def linked_files(folder: Path, names) -> list[str]:
    """The entries of `folder` among `names` (file names or glob patterns) that are symbolic links or resolve outside
    `folder`, each with where it points: a run folder's files are published only when they are its own."""
    folder = Path(folder)
    root = folder.resolve()
    found = []
    for pattern in names:
        for path in sorted(folder.glob(pattern)):
            target = path.resolve()
            if path.is_symlink() or not target.is_relative_to(root):
                found.append(f"{path.name} → {target}")
    return sorted(set(found))


def check_no_links(folder: Path, names) -> None:
    """Raise `ExportError` naming every entry of `folder` matching `names` that is a link or points outside it."""
    links = linked_files(folder, names)
    if links:
        raise ExportError(
            f"{folder} holds symbolic links (or files resolving outside it), which are never published or read for "
            "publishing:\n  " + "\n  ".join(links) + "\nReplace each link by the file itself if it belongs to this run."
        )


def check_export_contents(folder: Path) -> None:
    """Every file of the export folder must be on the allow-list and hold what its type promises (PNG signature,
    valid JSON, a safetensors header, UTF-8 text): a pickle renamed to `.png` or `.json` is caught by its content.
    Raises `ExportError` naming each offending file and why."""
    import fnmatch

    problems = []
    for path in sorted(Path(folder).rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            problems.append(f"{name}: a symbolic link (→ {path.resolve()}); only plain files are published")
            continue
        if not path.is_file():
            continue
        kinds = [kind for pattern, kind in EXPORT_ALLOW_LIST if "/" not in name and fnmatch.fnmatch(name, pattern)]
        if not kinds:
            problems.append(f"{name}: not on the allow-list of published files")
            continue
        problem = _content_problem(path, kinds[0])
        if problem:
            problems.append(f"{name}: {problem}")
    if problems:
        raise ExportError(
            f"{folder} holds files that must not be published:\n  " + "\n  ".join(problems) + "\nOnly the model "
            "(safetensors), its config and code, the model card and the run's JSON/PNG reports are published."
        )


def check_no_pickle(folder: Path) -> None:
    """Raise `ExportError` naming every pickle-capable file in `folder`, then check every file's content against the
    allow-list (`check_export_contents`)."""
    pickles = find_pickle_files(folder)
    if pickles:
        names = ", ".join(str(path.relative_to(folder)) for path in pickles)
        raise ExportError(
            f"{folder} contains pickle-capable files ({names}); only safetensors weights and JSON/PNG/Markdown/"
            "Python files may be published. Remove them and rerun."
        )
    check_export_contents(folder)
