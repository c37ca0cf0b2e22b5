"""Audio-classification pipeline of the genremert models (first version: the stock pipeline; the song-level
slicing lands with issue #2 item 4)."""

from transformers.pipelines.audio_classification import AudioClassificationPipeline


class SongLevelAudioClassificationPipeline(AudioClassificationPipeline):
    """Audio classification that answers at song level for recordings longer than the training slice."""


__all__ = ["SongLevelAudioClassificationPipeline"]
