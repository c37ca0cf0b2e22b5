"""The layout's promises: one installed name for the library, remote-code files that import only torch / transformers /
numpy and each other, and a remote-code file list derived from the imports that setup.cfg agrees with."""

import ast
import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from genremert.publishing.verification import remote_code_files, repository_modules


REPO = Path(__file__).resolve().parent.parent
# What a remote-code file may import at module level: the standard library, torch, transformers, numpy, its siblings.
ALLOWED_TOP_LEVEL = {"torch", "transformers", "numpy"} | set(sys.stdlib_module_names)


def setup_cfg_modules() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return sorted(parser["options"]["py_modules"].split())


def test_setup_cfg_installs_exactly_the_remote_code_modules():
    assert setup_cfg_modules() == sorted(name[:-3] for name in remote_code_files())


@pytest.mark.parametrize("filename", remote_code_files())
def test_remote_code_imports_only_torch_transformers_numpy_and_siblings(filename):
    siblings = {name[:-3] for name in remote_code_files()}
    tree = ast.parse((REPO / filename).read_text(encoding="utf-8"))
    for node in tree.body:  # module level only: optional packages are imported inside the functions that need them
        statements = [node]
        if isinstance(node, ast.Try):
            statements = node.body + [item for handler in node.handlers for item in handler.body]
        for statement in statements:
            if isinstance(statement, ast.Import):
                names = [alias.name for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom):
                names = [statement.module or ""] if statement.level == 0 else []
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED_TOP_LEVEL or top in siblings, f"{filename} imports {name} at module level"


def test_the_verification_blocks_every_module_of_the_repository():
    blocked = set(repository_modules())
    assert {"genremert", "run_classification", "hub_upload", "interpret", "demo"} <= blocked
    assert {name[:-3] for name in remote_code_files()} <= blocked


def test_wheel_holds_one_package_and_the_remote_code_modules(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    (wheel,) = tmp_path.glob("genremert-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"genremert", *remote_code_files()}
    # No generic module name such as `interpret` or `hub_upload` lands in site-packages; the split lists travel.
    assert "interpret.py" not in top_level and "hub_upload.py" not in top_level
    assert "genremert/data/split_lists/gtzan/lca_test_songs.txt" in names


# ----------------------------------------------------------------------------------------------------------------------
# Rooms by stage: one public surface, no import circles, no oversized module
# ----------------------------------------------------------------------------------------------------------------------

PUBLIC_NAMES = (
    "load_gtzan",
    "load_artist20",
    "load_magnatagatune",
    "load_dataset_songs",
    "load_synthetic",
    "slice_songs",
    "LCATrainer",
    "LCATrainingArguments",
    "lca_loss_terms",
    "combine_lca_loss",
    "LCAMetrics",
    "TaggingMetrics",
    "tag_scores",
    "classification_scores",
    "song_scores",
    "GenreMERTConfig",
    "CRNNFGNLConfig",
    "SelfAttentionTaggerConfig",
    "GenreMERTForAudioClassification",
    "CRNNFGNLForAudioClassification",
    "SelfAttentionTaggerForAudioClassification",
)
MAX_LIBRARY_LINES = 600


def test_every_public_name_imports_from_the_top_in_a_fresh_process():
    code = (
        "import genremert\n"
        "missing = [n for n in genremert.__all__ if getattr(genremert, n, None) is None]\n"
        "assert not missing, missing\n"
        f"assert set({PUBLIC_NAMES!r}) <= set(genremert.__all__), set({PUBLIC_NAMES!r}) - set(genremert.__all__)\n"
        "from genremert import LCATrainer, load_gtzan, lca_loss_terms\n"
        "assert LCATrainer.__module__ == 'genremert.training.trainer'\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_an_unknown_top_level_name_is_an_attribute_error():
    import genremert

    with pytest.raises(AttributeError, match="no attribute 'load_gtzn'"):
        genremert.load_gtzn  # noqa: B018


def library_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((REPO / "genremert").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imported_library_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every library module `name` imports, at module level or inside a function (a lazy import is still an edge)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(candidate for candidate in candidates if candidate in modules and candidate != name)
    return found


def test_no_import_circle_between_library_modules():
    modules = library_modules()
    # The package itself serves the public surface lazily: it imports only the registry at import time.
    graph = {name: imported_library_modules(name, path, modules) for name, path in modules.items()}
    graph["genremert"] = {"genremert.registry"}
    for name, edges in graph.items():
        assert "genremert" not in edges or name == "genremert", f"{name} imports the package's public surface"
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                cycle = stack[stack.index(successor) :] + [successor]
                raise AssertionError("import circle: " + " → ".join(cycle))
            if successor not in state:
                visit(successor, stack + [successor])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_rooms_depend_in_one_direction():
    order = ["registry", "data", "evaluation", "publishing", "training", "analysis", "demo"]
    modules = library_modules()
    for name, path in modules.items():
        room = name.split(".")[1] if "." in name else None
        if room not in order:
            continue
        for target in imported_library_modules(name, path, modules):
            target_room = target.split(".")[1] if "." in target else None
            if target_room in order and target_room != room:
                assert order.index(target_room) < order.index(room), f"{name} ({room}) imports {target} ({target_room})"


def test_no_library_module_is_oversized():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in library_modules().items()}
    assert max(sizes.values()) <= MAX_LIBRARY_LINES, {n: s for n, s in sizes.items() if s > MAX_LIBRARY_LINES}
