"""genremert: learnable counterfactual attention (LCA) for music classification, in Hugging Face Transformers.

The models, their configs, the song-level pipeline and the audio rules they share are the remote-code modules beside
this package (`configuration_genremert`, `modeling_genremert`, `modeling_crnn_fgnl`, `modeling_self_attention_tagger`, `modeling_lca_genremert`,
`pipeline_genremert`, `audio_genremert`): they travel with every saved model folder. This package is the library that
trains, evaluates, publishes and explains them.

Importing it registers the three models with the Auto classes (`AutoConfig`, `AutoModelForAudioClassification`), so that
`AutoModelForAudioClassification.from_config(CRNNFGNLConfig(...))` works without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModelForAudioClassification

from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig, SelfAttentionTaggerConfig
from modeling_crnn_fgnl import CRNNFGNLForAudioClassification
from modeling_genremert import GenreMERTForAudioClassification
from modeling_lca_genremert import build_feature_extractor
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification


__version__ = "0.2.0"

AutoConfig.register("genremert", GenreMERTConfig, exist_ok=True)
AutoConfig.register("crnn_fgnl", CRNNFGNLConfig, exist_ok=True)
AutoConfig.register("self_attention_tagger", SelfAttentionTaggerConfig, exist_ok=True)
AutoModelForAudioClassification.register(GenreMERTConfig, GenreMERTForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(CRNNFGNLConfig, CRNNFGNLForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(
    SelfAttentionTaggerConfig, SelfAttentionTaggerForAudioClassification, exist_ok=True
)

# model_type → (config class, model class): every model the library trains, evaluates and publishes.
MODEL_CLASSES = {
    "genremert": (GenreMERTConfig, GenreMERTForAudioClassification),
    "crnn_fgnl": (CRNNFGNLConfig, CRNNFGNLForAudioClassification),
    "self_attention_tagger": (SelfAttentionTaggerConfig, SelfAttentionTaggerForAudioClassification),
}

__all__ = [
    "CRNNFGNLConfig",
    "CRNNFGNLForAudioClassification",
    "GenreMERTConfig",
    "GenreMERTForAudioClassification",
    "MODEL_CLASSES",
    "SelfAttentionTaggerConfig",
    "SelfAttentionTaggerForAudioClassification",
    "build_feature_extractor",
]
