"""Write vocal stems of a dataset with Open-Unmix: ``<stems_dir>/<song_id>/vocals.wav``.

That is the layout Open-Unmix and Demucs write, and the one ``load_gtzan(..., stems_dir=...)`` and
``load_artist20(..., stems_dir=...)`` read for the vocal-only setting.

    pip install openunmix          # on a machine with network access: it downloads its weights
    python scripts/separate_vocals.py --dataset artist20 --data_dir /data/artist20 \\
        --stems_dir /data/artist20_vocals [--model umxhq] [--device cuda]

Every song of every split is separated (songs the loader reports as unusable are skipped, with
the loader's warning). A stem already on disk is kept unless ``--overwrite``; stems are written
atomically, so an interrupted run can simply be started again.

Open-Unmix is imported only when this script runs. It imports torchaudio, which must match the
installed torch build (NOTES §5: a CUDA torchaudio beside CPU torch breaks ``import
transformers``), so run this script in its own environment if needed. The stems it writes are
plain wav files: the training environment does not need Open-Unmix.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable

import numpy as np
import soundfile as sf
import soxr

import genremert


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a checkout without `pip install`


def song_paths(songs) -> Dict[str, str]:
    """``{song_id: audio path}`` over every split of a song DatasetDict, sorted by song id."""
    pairs = {}
    for split in songs.values():
        table = split.with_format(None)
        pairs.update(zip(table["song_id"], table["audio"]))
    return dict(sorted(pairs.items()))


def separate_songs(
    paths: Dict[str, str],
    stems_dir: Path,
    separate: Callable[[np.ndarray], np.ndarray],
    model_rate: int,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> int:
    """Run `separate` on every song and write ``<stems_dir>/<song_id>/vocals.wav``; returns how many were written.

    `separate` takes stereo float32 ``(2, samples)`` at `model_rate` and returns the vocals the
    same shape. Mono songs are duplicated to two channels; other rates are resampled with soxr.
    """
    written = 0
    for number, (song_id, path) in enumerate(sorted(paths.items()), 1):
        target = stems_dir / song_id / "vocals.wav"
        if target.exists() and not overwrite:
            continue
        audio, rate = sf.read(path, dtype="float32", always_2d=True)  # (samples, channels)
        if audio.shape[1] == 1:
            audio = np.repeat(audio, 2, axis=1)
        audio = audio[:, :2]
        if rate != model_rate:
            audio = soxr.resample(audio, rate, model_rate, quality="HQ")
        vocals = np.asarray(separate(np.ascontiguousarray(audio.T)), dtype=np.float32)  # (2, samples)
        if vocals.ndim != 2 or vocals.shape[0] != 2:
            raise ValueError(f"{path}: the separator returned shape {vocals.shape}, expected (2, samples)")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp.wav")
        os.close(fd)
        try:
            sf.write(tmp, vocals.T, model_rate, subtype="PCM_16")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written += 1
        log(f"[{number}/{len(paths)}] {song_id} -> {target}")
    return written


def open_unmix_separator(model: str, device: str, niter: int):
    """(separate function, model rate) of an Open-Unmix model; a clear error when it is not installed."""
    try:
        import torch
        from openunmix import utils as umx_utils
    except ImportError as error:
        raise SystemExit(
            "separate_vocals.py needs Open-Unmix: `pip install openunmix` (it needs a torchaudio that matches "
            f"your torch, and network access the first time to download the '{model}' weights). ({error})"
        )
    separator = umx_utils.load_separator(
        model_str_or_path=model, targets=["vocals"], niter=niter, residual=True, device=device
    )
    separator.freeze()
    separator.to(device)

    def separate(stereo: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            estimates = separator(torch.as_tensor(stereo, device=device)[None])  # (1, targets, 2, samples)
        return estimates[0, 0].cpu().numpy()  # targets = ["vocals", "residual"]: vocals first

    return separate, int(separator.sample_rate)


def load_songs(dataset: str, data_dir: str):
    """All songs of a dataset (the union of the splits of a split that covers every file on disk)."""
    if dataset == "gtzan":
        return genremert.load_gtzan(data_dir, split="random")
    if dataset == "artist20":
        return genremert.load_artist20(data_dir, split="album")
    raise ValueError(f"--dataset must be gtzan or artist20, got {dataset!r}")


def main(argv: Iterable[str] = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=["gtzan", "artist20"])
    parser.add_argument("--data_dir", required=True, help="the dataset folder, as for load_gtzan / load_artist20")
    parser.add_argument("--stems_dir", required=True, help="output: <stems_dir>/<song_id>/vocals.wav")
    parser.add_argument("--model", default="umxhq", help="Open-Unmix model name or local model folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--niter", type=int, default=1, help="Wiener post-filter iterations (0 = fastest)")
    parser.add_argument("--overwrite", action="store_true", help="separate again songs whose stem exists")
    args = parser.parse_args(argv)
    paths = song_paths(load_songs(args.dataset, args.data_dir))
    separate, model_rate = open_unmix_separator(args.model, args.device, args.niter)
    written = separate_songs(paths, Path(args.stems_dir), separate, model_rate, overwrite=args.overwrite)
    print(f"{written} stem(s) written, {len(paths) - written} already present, under {args.stems_dir}")


if __name__ == "__main__":
    main()
