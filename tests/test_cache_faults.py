"""Faults of the two on-disk caches: non-finite or torn backbone-cache files, and a disk that fills up while either
cache (`--audio_cache_dir`, `--backbone_cache_dir`) is written."""

import errno
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Dataset

from genremert import BackboneFeatureCache
from genremert.data import audio_cache, audio_files


sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_configs import tiny_genremert_config  # noqa: E402


KEYS = ["a" * 40, "b" * 40]

# The two ways a full disk shows up: the system call's ENOSPC, and numpy's short write of `ndarray.tofile`.
DISK_FULL = {
    "enospc": lambda: OSError(errno.ENOSPC, "No space left on device"),
    "short_write": lambda: OSError("28704 requested and 18368 written"),
}


@pytest.fixture(scope="module")
def model():
    from genremert import GenreMERTForAudioClassification

    torch.manual_seed(0)
    return GenreMERTForAudioClassification(tiny_genremert_config()).eval()


def full_disk(monkeypatch, kind):
    """`numpy.save` writes part of the array, then fails the way a full disk makes it fail."""
    real_save = np.save

    def save(file, array, *args, **kwargs):
        if hasattr(file, "write"):
            file.write(b"\x93NUMPY partial")
        raise DISK_FULL[kind]()

    monkeypatch.setattr(np, "save", save)
    return real_save


def leftovers(folder: Path):
    return sorted(path.name for path in folder.rglob("*") if ".tmp" in path.name)


# ----------------------------------------------------------------------------------------------------------------------
# Non-finite and torn backbone-cache files
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_backbone_cache_entry_is_recomputed_and_rewritten(tmp_path, model, value):
    cache = BackboneFeatureCache(tmp_path / "features", model, "float32")
    waveforms = 0.1 * torch.randn(2, 12000, generator=torch.Generator().manual_seed(0))
    first = cache.hidden_states(model, waveforms, KEYS)
    entry = cache._path(KEYS[0])
    stored = np.load(entry)
    np.save(entry, np.full_like(stored, value))  # right dtype and shape, but poisoned
    with pytest.warns(UserWarning, match="non-finite"):
        again = cache.hidden_states(model, waveforms, KEYS)
    # Recomputed alone rather than in a batch of two: equal up to float rounding.
    torch.testing.assert_close(again, first, rtol=0, atol=1e-5)
    assert torch.isfinite(again).all()
    rewritten = np.load(entry)
    assert np.isfinite(rewritten).all()
    np.testing.assert_allclose(rewritten, stored, rtol=0, atol=1e-5)
    assert cache.misses == 3 and cache.hits == 1


@pytest.mark.parametrize("damage", ["empty", "torn", "not_an_object"])
def test_an_empty_or_torn_manifest_is_named_with_what_to_do(tmp_path, model, damage):
    folder = tmp_path / "features"
    BackboneFeatureCache(folder, model, "float32")
    manifest = folder / "manifest.json"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text({"empty": "", "torn": text[: len(text) // 2], "not_an_object": "[]"}[damage], encoding="utf-8")
    with pytest.raises(ValueError) as error:
        BackboneFeatureCache(folder, model, "float32")
    message = str(error.value)
    assert str(manifest) in message and "--backbone_cache_dir" in message
    assert "Delete the folder" in message and "use another" in message
    assert not isinstance(error.value, json.JSONDecodeError)


# ----------------------------------------------------------------------------------------------------------------------
# A full disk while a cache is written
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(DISK_FULL))
def test_a_full_disk_while_writing_a_backbone_cache_entry_names_it_and_leaves_no_temporary_file(
    tmp_path, model, monkeypatch, kind
):
    folder = tmp_path / "features"
    cache = BackboneFeatureCache(folder, model, "float32")
    waveforms = 0.1 * torch.randn(2, 12000, generator=torch.Generator().manual_seed(0))
    full_disk(monkeypatch, kind)
    with pytest.raises(OSError) as error:
        cache.hidden_states(model, waveforms, KEYS)
    message = str(error.value)
    assert f"disk full while writing {cache._path(KEYS[0])} in --backbone_cache_dir {folder}" in message
    assert error.value.errno == errno.ENOSPC
    assert leftovers(folder) == []
    assert not cache._path(KEYS[0]).exists()
    monkeypatch.undo()  # room again: the entry is computed and written as usual
    cache.hidden_states(model, waveforms, KEYS)
    assert cache._path(KEYS[0]).is_file() and leftovers(folder) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_while_writing_the_backbone_cache_manifest_names_it(tmp_path, model, monkeypatch):
    folder = tmp_path / "features"
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # the temporary file is made, but what is written to it goes to a full disk
        fd, name = real_mkstemp(*args, **kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(OSError, match=rf"disk full while writing {folder / 'manifest.json'} in --backbone_cache_dir"):
        BackboneFeatureCache(folder, model, "float32")
    assert leftovers(folder) == [] and not (folder / "manifest.json").exists()


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "song.wav"
    sf.write(path, 0.3 * np.sin(np.linspace(0, 440 * 2 * np.pi, 16000)).astype(np.float32), 16000)
    return path


@pytest.mark.parametrize("kind", list(DISK_FULL))
def test_a_full_disk_while_load_audio_fills_the_audio_cache_names_the_entry(tmp_path, song, monkeypatch, kind):
    cache = tmp_path / "cache"
    entry = audio_cache._cache_path(cache, str(song), 16000)
    real_save = full_disk(monkeypatch, kind)
    with pytest.raises(OSError) as error:
        audio_files.load_audio(song, 16000, cache)
    assert f"disk full while writing {entry} in --audio_cache_dir {cache}" in str(error.value)
    assert error.value.errno == errno.ENOSPC
    assert leftovers(cache) == [] and not entry.exists()
    monkeypatch.setattr(np, "save", real_save)
    audio = audio_files.load_audio(song, 16000, cache)
    np.testing.assert_array_equal(np.load(entry), audio)


@pytest.mark.parametrize("kind", list(DISK_FULL))
def test_a_full_disk_while_fill_cache_runs_names_the_entry_and_the_flag(tmp_path, song, monkeypatch, kind):
    cache = tmp_path / "cache"
    entry = audio_cache._cache_path(cache, str(song), 16000)
    full_disk(monkeypatch, kind)
    with pytest.raises(OSError, match="disk full while writing") as error:
        audio_files.fill_cache(Dataset.from_dict({"audio": [str(song)]}), 16000, cache, num_workers=1)
    assert str(entry) in str(error.value) and f"--audio_cache_dir {cache}" in str(error.value)
    assert leftovers(cache) == []


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, song, monkeypatch):
    cache = tmp_path / "cache"

    def save(file, array, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(np, "save", save)
    with pytest.raises(PermissionError) as error:
        audio_files.load_audio(song, 16000, cache)
    assert "disk full" not in str(error.value) and leftovers(cache) == []
