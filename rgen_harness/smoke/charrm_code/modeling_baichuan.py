"""A tiny stand-in for BaichuanCharRM's own code, in the layout of the published model folder.

The published folder ships `modeling_baichuan.py` with a class `BaichuanCharRM`: a Baichuan
decoder (`self.model`) and a one-output `score` head; its forward returns `(loss, scores)` with
`scores = sigmoid(score(last hidden state at the last position))`. This file keeps that class
name, attribute names and return value over a small Llama decoder, so tests load a folder that
ships its own code through the same path a real BaichuanCharRM folder takes.
"""

import torch
from torch import nn
from transformers import LlamaConfig, LlamaModel, PreTrainedModel

from .configuration_baichuan import BaichuanConfig


class BaichuanPreTrainedModel(PreTrainedModel):
    config_class = BaichuanConfig
    base_model_prefix = "model"
    _no_split_modules = ["LlamaDecoderLayer"]


class BaichuanCharRM(BaichuanPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        body = LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_attention_heads,
            max_position_embeddings=config.model_max_length,
            rms_norm_eps=config.rms_norm_eps,
            pad_token_id=config.pad_token_id,
        )
        self.model = LlamaModel(body)
        self.score = nn.Linear(config.hidden_size, 1, bias=True)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        hidden_states = self.model(input_ids, attention_mask=attention_mask)[0]
        logits = torch.sigmoid(self.score(hidden_states[:, -1, :]).squeeze())
        loss = None
        if labels is not None:
            loss = nn.functional.mse_loss(logits.view(-1), labels.type_as(logits).view(-1) / 4)
        return loss, logits
