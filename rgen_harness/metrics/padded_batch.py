"""One right-padded batch through a classifier's body, read at each row's last token: what the
hf reward backend and BaichuanCharRM share when a value head can be called apart from the body
(torch is imported when called)."""

from __future__ import annotations


def pad_right(batch: list[list[int]], pad_id: int, device):
    """`input_ids` padded with `pad_id` after each row's tokens, and the attention mask (1 on
    the tokens, 0 on the padding), both on `device`."""
    import torch

    longest = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids.to(device), mask.to(device)


def at_last_token(hidden, mask):
    """Each row's hidden state at its last token (`mask` from pad_right)."""
    import torch

    last = mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
