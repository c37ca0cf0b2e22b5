"""genremert: learnable counterfactual attention (LCA) for music classification, in Hugging Face Transformers.

The models, their configs, the song-level pipeline and the audio rules they share are the remote-code modules beside
this package (`configuration_genremert`, `modeling_genremert`, `modeling_crnn_fgnl`, `modeling_self_attention_tagger`,
`modeling_lca_genremert`, `pipeline_genremert`, `audio_genremert`): they travel with every saved model folder. This
package is the library that trains, evaluates, publishes and explains them, in rooms by stage:

    genremert/data/         file checks and caches, the corpus loaders, your own data, archives, synthetic sets
    genremert/evaluation/   frame / song and tagging metrics, shortcut metrics
    genremert/training/     Eq. 1 and LCATrainer, arguments, the run, run-folder safety, sweeps
    genremert/publishing/   Hub export and its checks, the model card, checkpoint conversion, MERT weights
    genremert/analysis/     attention and evidence maps, t-SNE, the bias probe, robustness curves

Everything a user imports is importable from here and listed in `__all__`; the module paths inside the rooms are an
implementation detail. Importing the package registers the three models with the Auto classes (`AutoConfig`,
`AutoModelForAudioClassification`, and the base models with `AutoModel`), so `AutoModelForAudioClassification.from_config(CRNNFGNLConfig(...))` works without
`trust_remote_code`. The rest is imported on first use (`genremert.load_gtzan` loads the data room, not matplotlib).
"""

from importlib import import_module
from typing import TYPE_CHECKING

from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig, SelfAttentionTaggerConfig
from modeling_crnn_fgnl import CRNNFGNLForAudioClassification, CRNNFGNLModel
from modeling_genremert import GenreMERTForAudioClassification, GenreMERTModel
from modeling_lca_genremert import build_feature_extractor
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification, SelfAttentionTaggerModel

from .registry import MODEL_CLASSES


__version__ = "0.2.0"

# public name → the module (inside this package) that defines it, imported on first access.
_LAZY_NAMES = {
    # data
    "load_gtzan": "data.corpora",
    "load_artist20": "data.corpora",
    "find_gtzan_files": "data.corpora",
    "gtzan_split_ids": "data.corpora",
    "find_artist20_files": "data.corpora",
    "artist20_album_split": "data.corpora",
    "GTZAN_GENRES": "data.corpora",
    "ARTIST20_ARTISTS": "data.corpora",
    "load_magnatagatune": "data.magnatagatune",
    "load_mtg_jamendo": "data.mtg_jamendo",
    "mtg_jamendo_rows": "data.mtg_jamendo",
    "MTG_JAMENDO_SUBSETS": "data.mtg_jamendo",
    "load_fma": "data.fma",
    "load_streamed_songs": "data.streaming",
    "stream_slices": "data.streaming",
    "StreamedSlices": "data.streaming",
    "FeatureStore": "data.feature_store",
    "extract_store": "data.feature_store",
    "bytes_per_hour": "data.feature_store",
    "fma_rows": "data.fma",
    "FMA_SIZES": "data.fma",
    "FMA_LABELS": "data.fma",
    "load_dataset_songs": "data.your_data",
    "load_synthetic": "data.synthetic",
    "load_attention_audio": "data.attention_audio",
    "FrameBenchmarkConfig": "data.attention_benchmark",
    "make_frame_split": "data.attention_benchmark",
    "attention_mass": "evaluation.attention_mass",
    "synthetic_metadata": "data.synthetic",
    "SPLITS": "data.songs",
    "slice_songs": "data.audio_files",
    "load_audio": "data.audio_files",
    "fill_cache": "data.audio_files",
    "check_audio_file": "data.audio_files",
    "validate_audio_files": "data.audio_files",
    "audio_num_samples": "data.audio_files",
    "BadAudioFile": "data.audio_files",
    "BadAudioFilesError": "data.audio_files",
    "BackboneFeatureCache": "data.backbone_cache",
    # evaluation
    "LCAMetrics": "evaluation.metrics",
    "classification_scores": "evaluation.metrics",
    "song_scores": "evaluation.metrics",
    "vote_songs": "evaluation.metrics",
    "bootstrap_song_intervals": "evaluation.metrics",
    "choose_vote_threshold": "evaluation.metrics",
    "TaggingMetrics": "evaluation.tagging_metrics",
    "tag_scores": "evaluation.tagging_metrics",
    "tagging_metrics": "evaluation.tagging_metrics",
    "shortcut_metrics": "evaluation.shortcut",
    "shortcut_rates": "evaluation.shortcut",
    # training
    "LCATrainer": "training.trainer",
    "LCATrainingArguments": "training.trainer",
    "SliceCollator": "training.trainer",
    "NonFiniteLossError": "training.trainer",
    "lca_loss_terms": "training.lca_loss",
    "combine_lca_loss": "training.lca_loss",
    "counterfactual_effect": "training.lca_loss",
    "mean_entropy": "training.lca_loss",
    "LOSS_TERMS": "training.lca_loss",
    "REFERENCE_LCA_WEIGHTS": "training.lca_loss",
    "ModelArguments": "training.arguments",
    "DataTrainingArguments": "training.arguments",
    "parse_arguments": "training.arguments",
    "train": "training.run",
    "run_experiments": "training.experiments",
    "summarize_experiments": "training.experiments",
    # publishing
    "export_for_hub": "publishing.hub_upload",
    "publish": "publishing.hub_upload",
    "build_model_card": "publishing.model_card",
    "convert_reference_checkpoint": "publishing.conversion",
    "load_mert_weights": "publishing.mert_weights",
    # analysis
    "attention_maps": "analysis.attention_maps",
    "plot_time_attention": "analysis.attention_maps",
    "plot_roll_attention": "analysis.attention_maps",
    "grad_cam": "analysis.attention_maps",
    "plot_tsne": "analysis.attention_maps",
    "tag_attention_maps": "analysis.tagger_maps",
    "bias_probe": "analysis.bias_probe",
    "branch_accuracy": "analysis.bias_probe",
    "robustness_curves": "analysis.robustness",
    "load_song_classifier": "analysis.web_app",
    "classify_song": "analysis.web_app",
    "build_interface": "analysis.web_app",
    "draw_song": "analysis.web_app",
    "SongAnswer": "analysis.web_app",
    "write_space": "publishing.space",
    "export_onnx": "publishing.onnx_export",
}
# public names whose object has another name in its module.
_ALIASES = {
    "train": "main",
    "run_experiments": "run_all",
    "summarize_experiments": "summarize",
    "make_frame_split": "make_split",
}

__all__ = [
    "CRNNFGNLConfig",
    "CRNNFGNLForAudioClassification",
    "CRNNFGNLModel",
    "GenreMERTConfig",
    "GenreMERTForAudioClassification",
    "GenreMERTModel",
    "SelfAttentionTaggerModel",
    "MODEL_CLASSES",
    "SelfAttentionTaggerConfig",
    "SelfAttentionTaggerForAudioClassification",
    "build_feature_extractor",
    *sorted(_LAZY_NAMES),
]


def __getattr__(name: str):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'genremert' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), _ALIASES.get(name, name))
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the lazy names as plain imports
    from .analysis.attention_maps import attention_maps, grad_cam, plot_roll_attention, plot_time_attention, plot_tsne
    from .analysis.bias_probe import bias_probe, branch_accuracy
    from .analysis.robustness import robustness_curves
    from .analysis.tagger_maps import tag_attention_maps
    from .analysis.web_app import SongAnswer, build_interface, classify_song, draw_song, load_song_classifier
    from .data.attention_audio import load_attention_audio
    from .data.attention_benchmark import FrameBenchmarkConfig
    from .data.attention_benchmark import make_split as make_frame_split
    from .data.audio_files import (
        BadAudioFile,
        BadAudioFilesError,
        audio_num_samples,
        check_audio_file,
        fill_cache,
        load_audio,
        slice_songs,
        validate_audio_files,
    )
    from .data.backbone_cache import BackboneFeatureCache
    from .data.corpora import (
        ARTIST20_ARTISTS,
        GTZAN_GENRES,
        artist20_album_split,
        find_artist20_files,
        find_gtzan_files,
        gtzan_split_ids,
        load_artist20,
        load_gtzan,
    )
    from .data.feature_store import FeatureStore, bytes_per_hour, extract_store
    from .data.fma import FMA_LABELS, FMA_SIZES, fma_rows, load_fma
    from .data.magnatagatune import load_magnatagatune
    from .data.mtg_jamendo import MTG_JAMENDO_SUBSETS, load_mtg_jamendo, mtg_jamendo_rows
    from .data.songs import SPLITS
    from .data.streaming import StreamedSlices, load_streamed_songs, stream_slices
    from .data.synthetic import load_synthetic, synthetic_metadata
    from .data.your_data import load_dataset_songs
    from .evaluation.attention_mass import attention_mass
    from .evaluation.metrics import (
        LCAMetrics,
        bootstrap_song_intervals,
        choose_vote_threshold,
        classification_scores,
        song_scores,
        vote_songs,
    )
    from .evaluation.shortcut import shortcut_metrics, shortcut_rates
    from .evaluation.tagging_metrics import TaggingMetrics, tag_scores, tagging_metrics
    from .publishing.conversion import convert_reference_checkpoint
    from .publishing.hub_upload import export_for_hub, publish
    from .publishing.mert_weights import load_mert_weights
    from .publishing.model_card import build_model_card
    from .publishing.onnx_export import export_onnx
    from .publishing.space import write_space
    from .training.arguments import DataTrainingArguments, ModelArguments, parse_arguments
    from .training.experiments import run_all as run_experiments
    from .training.experiments import summarize as summarize_experiments
    from .training.lca_loss import (
        LOSS_TERMS,
        REFERENCE_LCA_WEIGHTS,
        combine_lca_loss,
        counterfactual_effect,
        lca_loss_terms,
        mean_entropy,
    )
    from .training.run import main as train
    from .training.trainer import LCATrainer, LCATrainingArguments, NonFiniteLossError, SliceCollator
