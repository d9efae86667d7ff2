"""A tiny random BaichuanCharRM folder that ships its own model code, for tests and demos.

Layout as the published morecry/BaichuanCharRM folder: `config.json` (architectures
BaichuanCharRM, `auto_map` to the folder's own configuration and modeling files), the weights,
`modeling_baichuan.py`, `configuration_baichuan.py`, `tokenization_baichuan.py` and the
tokenizer files (`auto_map` to `tokenization_baichuan.BaichuanTokenizer`). Scores are random.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CODE_DIR = Path(__file__).parent / "charrm_code"
CODE_FILES = ("configuration_baichuan.py", "modeling_baichuan.py", "tokenization_baichuan.py")
_MARKER = "rgen_tiny_charrm.json"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]


def _texts() -> list[str]:
    from rgen_harness.data.charactereval import SAMPLE_DIR
    from rgen_harness.smoke.tiny_models import _training_text

    texts = list(_training_text())
    for path in sorted(SAMPLE_DIR.iterdir()):
        texts.append(path.read_text(encoding="utf-8"))
    texts.append("<RoleInfo> <Context> <Response> <Dimension>")
    return texts


def build_charrm(out_dir: str | Path, *, seed: int = 2, vocab_size: int = 800) -> Path:
    """Build (once per settings) a tiny BaichuanCharRM folder in `out_dir`."""
    import importlib.util
    import sys

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    settings = {"build": 1, "seed": seed, "vocab_size": vocab_size}
    marker = out_dir / _MARKER
    try:
        if json.loads(marker.read_text()) == settings:
            return out_dir
    except (OSError, ValueError):
        pass
    marker.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(out_dir)
    config_path = out_dir / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text(encoding="utf-8"))
    tok_config["tokenizer_class"] = "BaichuanTokenizer"
    tok_config["auto_map"] = {"AutoTokenizer": ["tokenization_baichuan.BaichuanTokenizer", None]}
    config_path.write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    for name in CODE_FILES:
        shutil.copyfile(CODE_DIR / name, out_dir / name)

    # The classes, imported from the copies as a package (the modeling file imports its
    # configuration relatively, as the published one does).
    package = f"_rgen_tiny_charrm_{abs(hash(str(out_dir)))}"
    spec = importlib.util.spec_from_file_location(
        package, CODE_DIR / "__init__.py", submodule_search_locations=[str(CODE_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)
    modeling = importlib.import_module(f"{package}.modeling_baichuan")
    configuration = importlib.import_module(f"{package}.configuration_baichuan")
    config = configuration.BaichuanConfig(
        vocab_size=len(fast),
        pad_token_id=fast.unk_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        architectures=["BaichuanCharRM"],
        auto_map={
            "AutoConfig": "configuration_baichuan.BaichuanConfig",
            "AutoModel": "modeling_baichuan.BaichuanCharRM",
        },
    )
    torch.manual_seed(seed)
    model = modeling.BaichuanCharRM(config)
    with torch.no_grad():  # a visible spread of scores over the 1-5 range
        model.score.weight.mul_(20.0)
    model.save_pretrained(out_dir)
    # save_pretrained writes the auto_map of the class's own module path: point it at the
    # folder's files, as in the published config.json.
    cfg = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    cfg["auto_map"] = {
        "AutoConfig": "configuration_baichuan.BaichuanConfig",
        "AutoModel": "modeling_baichuan.BaichuanCharRM",
    }
    cfg["architectures"] = ["BaichuanCharRM"]
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    marker.write_text(json.dumps(settings))
    return out_dir
