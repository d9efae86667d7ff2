"""The tiny stand-in's tokenizer class, named as in the published folder.

The published `BaichuanTokenizer` is a SentencePiece tokenizer; this one is a byte-level BPE
(`tokenizer.json`). Both are loaded through the folder's `auto_map`."""

from transformers import PreTrainedTokenizerFast


class BaichuanTokenizer(PreTrainedTokenizerFast):
    pass
