"""BaichuanCharRM scoring of CharacterEval replies (the `charrm` scorer).

options.py (the `charrm_*` settings) -> render.py (the reward model's input text and ids, as the
authors' run_char_rm.py builds them) -> model.py (loading the model folder's own BaichuanCharRM
code, with consent; batched scoring) -> scorer.py (cache, batches, one score per pair) ->
aggregate.py (metric means, dimension averages, bootstrap intervals, per-role breakdown).
Heavy libraries are imported only when a model is loaded.
"""
