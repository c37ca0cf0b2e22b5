"""Data: up-front file checks and the decoded-audio cache (`audio_files`), the song table every loader builds
(`songs`), the corpora (`corpora`: GTZAN and artist20; `magnatagatune`), any `datasets` dataset or audio folder
(`your_data`), archives (`archives`), the synthetic benchmark (`synthetic_music` renders, `synthetic` loads), and the
frozen backbone's feature cache (`backbone_cache`). Depends on nothing else in the library."""
