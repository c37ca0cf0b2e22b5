"""The three models in the Auto classes, and the registry every stage of the library reads (`MODEL_CLASSES`).

Imported by `import genremert`: afterwards `AutoConfig` / `AutoModelForAudioClassification` resolve our model types
without `trust_remote_code` (the remote-code files never register anything themselves: no side effects on import).
"""

from transformers import AutoConfig, AutoModelForAudioClassification

from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig, SelfAttentionTaggerConfig
from modeling_crnn_fgnl import CRNNFGNLForAudioClassification
from modeling_genremert import GenreMERTForAudioClassification
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification


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
