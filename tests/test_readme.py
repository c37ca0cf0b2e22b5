"""Every Python block of README.md and docs/inference.md runs as written.

The blocks of one file run in order in one namespace (a later block may use an earlier one's names), in a fresh
process whose working directory is a temporary folder holding the stand-ins the documents name: a tiny trained-model
folder at `path/to/model-folder` and short recordings `song.mp3` / `song.wav`. A block that cannot run here is
marked by the line `<!-- no-test: why -->` right above its opening fence; every other ```python block must run, and a
failure points at the document's own line (its traceback names `README.md`, line numbers as in the file).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_configs import tiny_crnn_fgnl_config


REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/inference.md")
NO_TEST = re.compile(r"^<!--\s*no-test:\s*(\S.*?)\s*-->$")
MAX_NO_TEST_BLOCKS = 2  # a marker is for what needs data this machine has not got, not for code that fails

# Runs the blocks of each document: {"documents": [[path, [[first line, code], ...]], ...]}.
RUNNER = r"""
import json, sys, traceback

spec = json.loads(sys.argv[1])
for path, blocks in spec["documents"]:
    namespace = {"__name__": "__main__"}
    for first_line, code in blocks:
        # Leading newlines make the traceback's line numbers those of the document.
        exec(compile("\n" * (first_line - 1) + code, path, "exec"), namespace)
        print(f"ran {path}:{first_line}", flush=True)
"""


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """`(line of the block's first code line, code, no-test reason or None)` for every ```python block of `path`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
            marker = NO_TEST.match(previous)
            end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                raise AssertionError(f"{path}:{index + 1}: a ```python block that is never closed")
            blocks.append((index + 2, "\n".join(lines[index + 1 : end]) + "\n", marker.group(1) if marker else None))
            index = end
        index += 1
    return blocks


def write_stand_ins(folder: Path) -> None:
    """What the documents' blocks name: a trained-model folder and two recordings."""
    from genremert import CRNNFGNLForAudioClassification

    labels = ["jazz", "blues", "rock"]
    config = tiny_crnn_fgnl_config(
        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}, slice_seconds=2.0
    )
    CRNNFGNLForAudioClassification(config).eval().save_pretrained(folder / "path" / "to" / "model-folder")
    rate = 22050
    time = np.arange(3 * rate) / rate
    song = (0.3 * np.sin(2 * np.pi * 440.0 * time)).astype(np.float32)  # 3 s
    sf.write(folder / "song.wav", song, rate)
    sf.write(folder / "song.mp3", song, rate, format="MP3")


def test_the_blocks_are_found_and_marked_sparingly():
    found = {name: python_blocks(REPO_ROOT / name) for name in DOCUMENTS}
    for name, blocks in found.items():
        assert any(reason is None for _, _, reason in blocks), f"{name}: no runnable ```python block found"
    skipped = [f"{name}:{line} ({reason})" for name, blocks in found.items() for line, _, reason in blocks if reason]
    assert len(skipped) <= MAX_NO_TEST_BLOCKS, f"too many blocks marked no-test: {skipped}"


def test_every_python_block_of_the_documents_runs(tmp_path):
    write_stand_ins(tmp_path)
    documents = []
    for name in DOCUMENTS:
        blocks = [[line, code] for line, code, reason in python_blocks(REPO_ROOT / name) if reason is None]
        documents.append([name, blocks])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "GENREMERT_CACHE": str(tmp_path / "cache"),  # nothing written to the user's caches
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps({"documents": documents})],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, f"a documented block failed:\n{completed.stderr[-4000:]}"
    ran = re.findall(r"^ran (\S+):(\d+)$", completed.stdout, flags=re.MULTILINE)
    assert ran == [(name, str(line)) for name, blocks in documents for line, _ in blocks], completed.stdout

    # The quick start's comment on its printed shapes is what the code prints.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if line.startswith("print(out.logits.shape, "))
    claimed = line.split("  # ", 1)[1]
    printed = re.search(r"^torch\.Size\(\[.*$", completed.stdout, flags=re.MULTILINE).group(0)
    assert printed.replace("torch.Size([", "(").replace("])", ")") == claimed.strip(), (printed, claimed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\nx = 1\n```\n", [(2, "x = 1\n", None)]),
        ("<!-- no-test: needs GTZAN -->\n\n```python\nload()\n```\n", [(4, "load()\n", "needs GTZAN")]),
        ("```bash\nls\n```\n```python\na\nb\n```\n", [(5, "a\nb\n", None)]),
    ],
)
def test_blocks_and_markers_are_read_with_their_lines(tmp_path, text, expected):
    path = tmp_path / "doc.md"
    path.write_text(text, encoding="utf-8")
    assert python_blocks(path) == expected
