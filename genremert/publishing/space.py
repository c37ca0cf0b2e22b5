"""A Hugging Face Space for a published genremert model: `python hub_upload.py --repo_id user/model --space DIR`.

The folder it writes is ready to push as a Gradio Space (`hf upload user/space DIR . --repo-type space`):

    app.py            serves the page of `genremert.analysis.web_app` for the model repo (GENREMERT_MODEL overrides it)
    requirements.txt  what the page imports, with this checkout's version ranges (setup.cfg) and the tested gradio
    README.md         the Space's front matter (`sdk: gradio`, `sdk_version`, `app_file: app.py`, `models: [repo]`) and
                      a link to the model card
    genremert_space/  a copy of the library modules the page imports (`analysis/web_app.py` and, following its
                      relative imports, the attention maps, the registry, the model card's rule text)
    *_genremert.py, modeling_*.py   the remote-code modules, flat, as in every model folder

Why a copy: genremert is not on PyPI, and the page needs more than the model repo carries (the attention maps, the
registry). The copied modules import only torch, transformers, numpy, soundfile, soxr, matplotlib and gradio, and come
from the checkout that exports the model with `hub_upload.py`, so the Space runs the code the model was verified with.
The model repo supplies `config.json`, `preprocessor_config.json` and the safetensors weights; its own code files are
not run (the copied registry registers the three model types, so no `trust_remote_code` is needed).
"""

import ast
import configparser
import importlib.util
import shutil
from pathlib import Path

from .export_checks import ExportError
from .verification import remote_code_files


PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # genremert/
SPACE_PACKAGE = "genremert_space"  # the copy's package name: never shadows an installed genremert
SPACE_ENTRY_MODULE = "analysis/web_app.py"  # the page; every module it imports relatively is copied with it
SPACE_MARKER = "<!-- Written by genremert hub_upload.py --space. -->"
# What the copied code imports (besides the standard library), pinned with setup.cfg's ranges; gradio separately.
SPACE_PACKAGES = ("torch", "transformers", "numpy", "soundfile", "soxr", "matplotlib")
SPACE_APP = '''"""Hugging Face Space of the genremert model {repo_id}: drop or record a song, see the song answer, every slice's
vote and the model's attention over time.

Written by genremert's `hub_upload.py --space`. `genremert_space/` is a copy of the library modules the page needs and
the flat *_genremert.py / modeling_*.py files are the model code, both from the version of genremert that exported the
model: the model repo supplies the config and the safetensors weights; its own code files are not run. Set
GENREMERT_MODEL to serve another model repo or a local model folder:

    GENREMERT_MODEL=path/to/model python app.py
"""

import os

from genremert_space.analysis.web_app import build_interface, load_song_classifier


MODEL = os.environ.get("GENREMERT_MODEL", {repo_id!r})
classifier = load_song_classifier(MODEL, flag="GENREMERT_MODEL")
demo = build_interface(classifier, model_name=MODEL)

if __name__ == "__main__":
    demo.launch()
'''
SPACE_PACKAGE_INIT = '''"""A copy of the genremert modules the Space's page imports, written by `hub_upload.py --space` (the full library is
not installed here). Do not edit: write the Space again from the genremert checkout."""
'''


def _module_path(module: str) -> Path:
    """`genremert/<a>/<b>.py` or `genremert/<a>/<b>/__init__.py` of a dotted module name inside the package."""
    parts = module.split(".")[1:]
    candidate = PACKAGE_ROOT.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    raise ExportError(f"The Space's code imports {module}, which has no file under {PACKAGE_ROOT}.")


def space_code_files() -> dict:
    """`{path in the Space: source file}` of the code the page needs: `analysis/web_app.py`, every library module it
    imports relatively (recursively, with the `__init__.py` of each package on the way) under `genremert_space/`, and
    the remote-code modules flat. Derived from the imports, never listed by hand; an absolute import of the library
    (`genremert.x`) is refused, since the Space has no genremert package."""
    remote = {name[:-3] for name in remote_code_files()}
    pending, seen = ["genremert." + SPACE_ENTRY_MODULE[:-3].replace("/", ".")], set()
    files, uses_remote_code = {}, False
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_path(module)
        files[path.relative_to(PACKAGE_ROOT).as_posix()] = path
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parents = package.split(".")
        pending.extend(".".join(parents[:depth]) for depth in range(2, len(parents) + 1))  # genremert.x/__init__.py
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # lazy imports too
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                if target == "genremert":
                    raise ExportError(f"{path} imports the package's public surface; the Space copies modules only.")
                pending.append(target)
                # `from . import x`, `from .a import b`: the imported names may be modules themselves
                pending.extend(f"{target}.{alias.name}" for alias in node.names if _is_module(f"{target}.{alias.name}"))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.split(".")[0] == "genremert":
                        raise ExportError(
                            f"{path} imports {name}: the Space's copy of the code has no genremert package, so the "
                            "modules it copies must import each other relatively."
                        )
                    uses_remote_code |= name.split(".")[0] in remote
    space = {f"{SPACE_PACKAGE}/{name}": source for name, source in sorted(files.items())}
    if uses_remote_code:
        for name in remote_code_files():
            beside = PACKAGE_ROOT.parent / name  # the checkout the package lives in; else the installed module
            space[name] = beside if beside.is_file() else Path(importlib.util.find_spec(name[:-3]).origin)
    return space


def _is_module(name: str) -> bool:
    try:
        _module_path(name)
    except ExportError:
        return False
    return True


def _install_requires() -> list:
    """The library's requirements: setup.cfg of the checkout the code is copied from, else the installed metadata."""
    setup_cfg = PACKAGE_ROOT.parent / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser()
        parser.read(setup_cfg, encoding="utf-8")
        lines = parser["options"]["install_requires"].splitlines()
        return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    from importlib.metadata import requires

    return [line for line in requires("genremert") or [] if "extra ==" not in line]


def gradio_version() -> str:
    """The installed gradio's version: the Space runs the version the page was tested with here."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio")
    except PackageNotFoundError:
        raise ExportError(
            "--space needs gradio installed (pip install -e '.[app]'): the Space pins the gradio version the page was "
            "tested with, and checks that its app builds."
        ) from None


def space_requirements() -> list:
    """requirements.txt lines: `SPACE_PACKAGES` with the library's own version ranges, and `gradio==<installed>`."""
    from packaging.requirements import Requirement

    ranges = {Requirement(line).name.lower(): line for line in _install_requires()}
    missing = [name for name in SPACE_PACKAGES if name not in ranges]
    if missing:
        raise ExportError(f"The library's requirements do not name {missing}, which the Space's code imports.")
    return [ranges[name] for name in SPACE_PACKAGES] + [f"gradio=={gradio_version()}"]


def space_readme(repo_id: str, title: str | None = None) -> str:
    """README.md of the Space: its front matter (`huggingface_hub.SpaceCardData`) and a link to the model card."""
    from huggingface_hub import SpaceCardData

    title = title or f"{repo_id.split('/')[1]} demo"
    metadata = SpaceCardData(
        title=title,
        emoji="🎧",
        colorFrom="indigo",
        colorTo="purple",
        sdk="gradio",
        sdk_version=gradio_version(),
        app_file="app.py",
        pinned=False,
        models=[repo_id],
        short_description="Song-level answer, slice votes and attention",
    )
    return (
        f"---\n{metadata.to_yaml()}\n---\n\n{SPACE_MARKER}\n\n# {title}\n\n"
        f"Drop or record a song and see what the model [{repo_id}](https://huggingface.co/{repo_id}) answers: its "
        "model card says how it was trained, on what, and how well it does.\n\n"
        "The page shows the song answer of the model's song-level pipeline and the rule that produced it (the "
        "majority vote of the slices, or their mean probability, as the model's config saves it), every slice's "
        "probabilities and vote over time, and the main branch's attention over time drawn on the waveform.\n\n"
        "Written by genremert's `hub_upload.py --space`; `app.py` says where its code comes from.\n"
    )


def _prepare_space_dir(space_dir: Path) -> None:
    """Create `space_dir`, or empty it if it is a Space this module wrote; refuse anything else."""
    if space_dir.exists():
        if not space_dir.is_dir():
            raise ExportError(f"--space {space_dir} exists and is not a folder.")
        if any(space_dir.iterdir()):
            readme = space_dir / "README.md"
            if not (readme.is_file() and SPACE_MARKER in readme.read_text(encoding="utf-8", errors="replace")):
                raise ExportError(
                    f"--space {space_dir} exists, is not empty and is not a Space written by hub_upload.py --space "
                    "(its README.md lacks the marker); choose another folder."
                )
            shutil.rmtree(space_dir)
    space_dir.mkdir(parents=True, exist_ok=True)


def write_space(space_dir, repo_id: str, title: str | None = None) -> list:
    """Write the Space folder of the model repo `repo_id` (validated by the caller) into `space_dir`; returns its
    files, relative to it."""
    space_dir = Path(space_dir)
    requirements = space_requirements()  # before touching the folder: a missing gradio leaves it as it was
    readme = space_readme(repo_id, title)
    code = space_code_files()
    _prepare_space_dir(space_dir)
    for name, source in code.items():
        target = space_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (space_dir / SPACE_PACKAGE / "__init__.py").write_text(SPACE_PACKAGE_INIT, encoding="utf-8")
    (space_dir / "app.py").write_text(SPACE_APP.format(repo_id=repo_id), encoding="utf-8")
    (space_dir / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    (space_dir / "README.md").write_text(readme, encoding="utf-8")
    return sorted(path.relative_to(space_dir).as_posix() for path in space_dir.rglob("*") if path.is_file())


__all__ = ["space_code_files", "space_readme", "space_requirements", "write_space"]
