"""A tiny MagnaTagATune tree in the real layout (annotations_final.csv + mp3 folders 0…f), written by the tests.

Each song is cut into clips named `<song>-<start>-<end>.mp3`; each tag adds a tone of its own frequency to the clips
that carry it, so that a model can learn the tags. `TAGS` are the five frequent tags and
`RARE_TAG` occurs once, so that `num_tags=len(TAGS)` keeps exactly `TAGS` (validation has no `strings` clip).
"""

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


TAGS = ["guitar", "classical", "slow", "techno", "strings"]
RARE_TAG = "ambient"  # once in the CSV: not in the top len(TAGS)
TAG_HZ = {"guitar": 330.0, "classical": 523.0, "slow": 196.0, "techno": 880.0, "strings": 1320.0, "ambient": 2000.0}
SAMPLING_RATE = 16000
# folder → songs (song name, tags of its clips); two clips per song. Folders 0–b train, c validation, d–f test.
LAYOUT = {
    "0": [("artist_a-album_a-01-intro", ["guitar", "slow"]), ("artist_b-album_b-02-beat", ["techno"])],
    "5": [("artist_c-album_c-01-aria", ["classical", "strings", "slow"])],
    "b": [
        ("artist_d-album_d-03-riff", ["guitar", "techno"]),
        ("artist_e-album_e-01-quartet", ["classical", "strings"]),
    ],
    "c": [("artist_f-album_f-01-ballad", ["guitar", "slow"]), ("artist_g-album_g-02-club", ["techno", "classical"])],
    "d": [("artist_h-album_h-01-suite", ["classical", "strings", "slow"])],
    "e": [("artist_i-album_i-04-jam", ["guitar", "techno", "strings"])],
    "f": [("artist_j-album_j-01-drone", ["slow", "classical", "guitar"])],
}


def write_mtat_tree(root: Path, clip_seconds: float = 2.0, clips_per_song: int = 2, extra_rows=()) -> Path:
    """Writes the tree under `root` and returns it. `extra_rows`: (folder, song, tags) added as one clip each."""
    root = Path(root)
    columns = TAGS + [RARE_TAG]
    rows = []
    clip_id = 0
    entries = [(folder, song, tags) for folder, songs in LAYOUT.items() for song, tags in songs]
    for folder, song, tags in [*entries, *extra_rows]:
        for clip in range(clips_per_song if (folder, song, tags) in entries else 1):
            start = int(clip * 29)
            mp3_path = f"{folder}/{song}-{start}-{start + 29}.mp3"
            path = root / mp3_path
            path.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(clip_id)
            time = np.arange(int(clip_seconds * SAMPLING_RATE)) / SAMPLING_RATE
            audio = 0.02 * rng.standard_normal(time.shape)
            for tag in tags:
                audio += 0.2 * np.sin(2 * np.pi * TAG_HZ[tag] * time + rng.uniform(0, 6.28))
            sf.write(path, audio.astype(np.float32), SAMPLING_RATE, format="MP3")
            rows.append([str(clip_id), *("1" if tag in tags else "0" for tag in columns), mp3_path])
            clip_id += 1
    # The rare tag on one extra training clip, so that it exists but stays out of the top len(TAGS).
    rows[0][1 + columns.index(RARE_TAG)] = "1"
    with open(root / "annotations_final.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *columns, "mp3_path"])
        writer.writerows(rows)
    return root
