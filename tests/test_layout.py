"""The layout's promises: one installed name for the library, remote-code files that import only torch / transformers /
numpy and each other, and a remote-code file list derived from the imports that setup.cfg agrees with."""

import ast
import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from genremert.hub_upload import remote_code_files, repository_modules


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
    assert "genremert/split_lists/gtzan/lca_test_songs.txt" in names
