"""Typed model_args of `--model lmdeploy`, validated once and mapped onto lmdeploy's own configs.

`LMDeployArgs.from_kwargs` takes what lm-eval passes to the model class (the parsed
`--model_args` plus the CLI's `batch_size` / `max_batch_size` / `device`), checks every key and
value, and builds lmdeploy's `TurbomindEngineConfig` or `PytorchEngineConfig`
(`engine_config()`) and `GenerationConfig` (`generation_config()`). Keys that are not ours but
are fields of lmdeploy's engine config pass through and are validated by that dataclass itself;
anything else is an error with a "did you mean" suggestion.

Nothing here imports lmdeploy at module import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Literal

PIP_HINT = 'pip install "rgen-harness[lmdeploy]"'
Backend = Literal["auto", "turbomind", "pytorch"]
BACKENDS = ("auto", "turbomind", "pytorch")
DTYPES = ("auto", "float16", "bfloat16")
QUANT_POLICIES = (0, 4, 8)

# lm-eval's generation kwargs that map onto GenerationConfig under another name (or not at all).
GEN_KWARG_ALIASES = {"seed": "random_seed"}
GEN_KWARGS_HANDLED = {"until", "max_gen_toks", "max_new_tokens", "max_tokens", "do_sample"}
GEN_KWARGS_REFUSED = {  # GenerationConfig fields the adapter sets itself
    "stop_words",
    "stop_token_ids",
    "logprobs",
    "logprob_start_len",
    "include_stop_str_in_output",
    "n",
}


class ModelArgsError(ValueError):
    """A wrong `--model_args` key or value; the message says how to fix it."""


def require_lmdeploy():
    """Import lmdeploy or fail with the install command."""
    try:
        import lmdeploy
    except ImportError as e:
        raise ImportError(
            f"--model lmdeploy needs the lmdeploy package, which is not installed ({e}). "
            f"Install it with: {PIP_HINT}"
        ) from e
    return lmdeploy


def suggest(key: str, known: list[str] | tuple[str, ...] | set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ModelArgsError(f"{name}={value!r} is not a boolean: use {name}=True or {name}=False.")


def _as_int(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise ModelArgsError(f"{name}={value!r} is not an integer.")
    try:
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except ValueError:
        raise ModelArgsError(f"{name}={value!r} is not an integer, e.g. {name}=2.") from None
    if minimum is not None and number < minimum:
        raise ModelArgsError(f"{name}={number} must be >= {minimum}.")
    return number


def _as_float(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ModelArgsError(f"{name}={value!r} is not a number.") from None
    if not low <= number <= high:
        raise ModelArgsError(f"{name}={number} must lie in [{low}, {high}].")
    return number


def _choice(name: str, value: Any, choices: tuple) -> Any:
    if value in choices:
        return value
    raise ModelArgsError(
        f"{name}={value!r} is not one of {', '.join(map(str, choices))}."
        + (suggest(str(value), [str(c) for c in choices]) if isinstance(value, str) else "")
    )


def parse_adapters(value: Any) -> dict[str, str]:
    """`name:path[;name:path...]` (model_args are comma separated, so `;` joins adapters), or a
    dict. A bare path is named after its folder."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for part in str(value).split(";"):
            part = part.strip()
            if not part:
                continue
            name, sep, path = part.partition(":")
            if not sep or os.path.exists(part):
                name, path = os.path.basename(os.path.normpath(part)), part
            items.append((name.strip(), path.strip()))
    adapters: dict[str, str] = {}
    for name, path in items:
        if not name or not path:
            raise ModelArgsError(
                f"adapters={value!r}: each adapter is NAME:PATH, several joined by ';', "
                "e.g. adapters=math:/ckpt/lora-math;code:/ckpt/lora-code"
            )
        if name in adapters:
            raise ModelArgsError(f"adapters={value!r}: adapter name {name!r} is given twice.")
        adapters[name] = path
    return adapters


def read_chat_template(value: str | None) -> str | None:
    """A Jinja chat template given inline or as a path to a file holding one."""
    if value in (None, ""):
        return None
    text = str(value)
    if "{%" in text or "{{" in text:
        return text
    path = os.path.expanduser(text)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    raise ModelArgsError(
        f"chat_template={text[:80]!r} is neither a Jinja template nor a file: give the path of a "
        ".jinja file (chat_template=/path/template.jinja) or leave it out to use the tokenizer's."
    )


@dataclass(frozen=True)
class LMDeployArgs:
    """Everything `--model lmdeploy --model_args ...` accepts (see the field comments)."""

    pretrained: str  # hub id or local folder
    backend: Backend = "auto"  # auto: TurboMind when it supports the model, else PyTorch
    tp: int = 1  # tensor parallel GPUs (lmdeploy's own)
    dp: int = 1  # data parallel replicas (lmdeploy's own)
    session_len: int | None = None  # max prompt + generation tokens; None: the model's
    max_batch_size: int | None = None  # engine concurrency; None: lmdeploy's default
    cache_max_entry_count: float = 0.8  # fraction of free GPU memory for the KV cache
    enable_prefix_caching: bool = True  # lets a QCR round reuse the previous round's prefill
    dtype: str = "auto"
    model_format: str | None = None  # hf, awq, gptq, ...
    quant_policy: int = 0  # KV-cache quantisation: 0, 4 or 8 bits
    trust_remote_code: bool = False
    chat_template: str | None = None  # Jinja text or file overriding the tokenizer's template
    tokenizer: str | None = None  # tokenizer folder if not the model's
    adapters: dict[str, str] = field(default_factory=dict)  # LoRA name -> path (PyTorch)
    adapter_name: str | None = None  # adapter used for every request; default: the only one
    max_gen_toks: int = 256  # default when a task does not set it
    seed: int | None = None  # default sampling seed when a task samples
    log_level: str = "WARNING"
    engine_extra: dict[str, Any] = field(default_factory=dict)  # other lmdeploy config fields
    # lm-eval's CLI extras
    batch_size: str | int | None = None
    device: str | None = None

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "engine_extra"]

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> LMDeployArgs:
        kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "pretrained"}
        if "max_length" in kwargs:
            max_length = kwargs.pop("max_length")
            if kwargs.get("session_len") not in (None, max_length):
                raise ModelArgsError(
                    f"max_length={max_length} and session_len={kwargs['session_len']} disagree; "
                    "give only session_len (max_length is its alias)."
                )
            kwargs["session_len"] = max_length
        if not kwargs.get("pretrained"):
            raise ModelArgsError(
                "--model lmdeploy needs the model: --model_args pretrained=<hub id or folder>"
            )
        ours = set(cls.field_names())
        mine = {k: v for k, v in kwargs.items() if k in ours}
        extra = {k: v for k, v in kwargs.items() if k not in ours}
        args = cls._validated(mine)
        if extra:
            args = dataclasses.replace(args, engine_extra=_check_engine_extra(extra, args.backend))
        return args

    @classmethod
    def _validated(cls, raw: dict[str, Any]) -> LMDeployArgs:
        out: dict[str, Any] = {"pretrained": str(raw["pretrained"])}
        out["backend"] = _choice("backend", raw.get("backend", "auto"), BACKENDS)
        out["tp"] = _as_int("tp", raw.get("tp", 1), minimum=1)
        out["dp"] = _as_int("dp", raw.get("dp", 1), minimum=1)
        if raw.get("session_len") is not None:
            out["session_len"] = _as_int("session_len", raw["session_len"], minimum=2)
        if raw.get("max_batch_size") is not None:
            out["max_batch_size"] = _as_int("max_batch_size", raw["max_batch_size"], minimum=1)
        if "cache_max_entry_count" in raw:
            out["cache_max_entry_count"] = _as_float(
                "cache_max_entry_count", raw["cache_max_entry_count"], 0.01, 1.0
            )
        for name in ("enable_prefix_caching", "trust_remote_code"):
            if name in raw:
                out[name] = _as_bool(name, raw[name])
        if "dtype" in raw:
            out["dtype"] = _choice("dtype", raw["dtype"], DTYPES)
        if raw.get("model_format") is not None:
            out["model_format"] = str(raw["model_format"])
        if "quant_policy" in raw:
            out["quant_policy"] = _choice(
                "quant_policy", _as_int("quant_policy", raw["quant_policy"]), QUANT_POLICIES
            )
        out["chat_template"] = read_chat_template(raw.get("chat_template"))
        if raw.get("tokenizer") is not None:
            out["tokenizer"] = str(raw["tokenizer"])
        out["adapters"] = parse_adapters(raw.get("adapters"))
        adapter_name = raw.get("adapter_name")
        if out["adapters"]:
            if out["backend"] == "turbomind":
                raise ModelArgsError(
                    "LoRA adapters run on lmdeploy's PyTorch engine only: use backend=pytorch "
                    "(or leave backend out) with adapters=..."
                )
            out["backend"] = "pytorch"
            if adapter_name is None:
                if len(out["adapters"]) > 1:
                    raise ModelArgsError(
                        f"several adapters given ({', '.join(out['adapters'])}): choose the one "
                        "to evaluate with adapter_name=NAME"
                    )
                adapter_name = next(iter(out["adapters"]))
            elif adapter_name not in out["adapters"]:
                raise ModelArgsError(
                    f"adapter_name={adapter_name!r} is not among the adapters "
                    f"({', '.join(out['adapters'])})." + suggest(str(adapter_name), out["adapters"])
                )
        elif adapter_name is not None:
            raise ModelArgsError(
                f"adapter_name={adapter_name!r} needs adapters=NAME:PATH to load the LoRA weights."
            )
        out["adapter_name"] = adapter_name
        if "max_gen_toks" in raw:
            out["max_gen_toks"] = _as_int("max_gen_toks", raw["max_gen_toks"], minimum=1)
        if raw.get("seed") is not None:
            out["seed"] = _as_int("seed", raw["seed"], minimum=0)
        if "log_level" in raw:
            out["log_level"] = _choice(
                "log_level", str(raw["log_level"]).upper(), ("DEBUG", "INFO", "WARNING", "ERROR")
            )
        if raw.get("batch_size") is not None:
            out["batch_size"] = raw["batch_size"]
        if raw.get("device") is not None:
            out["device"] = str(raw["device"])
        if out.get("session_len") and out.get("max_gen_toks", 256) >= out["session_len"]:
            raise ModelArgsError(
                f"max_gen_toks={out.get('max_gen_toks', 256)} leaves no room for the prompt in "
                f"session_len={out['session_len']}: lower max_gen_toks or raise session_len."
            )
        return cls(**out)

    # -- mapping onto lmdeploy ----------------------------------------------------------------
    def engine_fields(self) -> dict[str, Any]:
        """Our keys that are lmdeploy engine-config fields, plus the pass-through ones."""
        fields = {
            "tp": self.tp,
            "dp": self.dp,
            "session_len": self.session_len,
            "max_batch_size": self.max_batch_size,
            "cache_max_entry_count": self.cache_max_entry_count,
            "enable_prefix_caching": self.enable_prefix_caching,
            "dtype": self.dtype,
            "model_format": self.model_format,
            "quant_policy": self.quant_policy,
        }
        if self.adapters:
            fields["adapters"] = dict(self.adapters)
        fields.update(self.engine_extra)
        return fields

    def engine_config(self, backend: Literal["turbomind", "pytorch"]):
        """lmdeploy's engine config for the resolved backend (validated by lmdeploy itself)."""
        require_lmdeploy()
        from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig

        if backend == "pytorch" and self.dp > 1:
            # lmdeploy's PyTorch engine resets dp to 1 when tp=1 and otherwise needs one process
            # per dp rank (its server launches them): one evaluating process cannot drive it.
            raise ModelArgsError(
                f"dp={self.dp} cannot run on lmdeploy's PyTorch engine from one process. Use "
                f"backend=turbomind,dp={self.dp} (replicas inside one engine), or serve the model "
                f"with `lmdeploy serve api_server <model> --backend pytorch --dp {self.dp}` and "
                "evaluate it with lm-eval's local-chat-completions model, or drop dp."
            )
        cls = PytorchEngineConfig if backend == "pytorch" else TurbomindEngineConfig
        names = {f.name for f in dataclasses.fields(cls)}
        values = self.engine_fields()
        if backend == "pytorch":
            values.setdefault("logprobs_mode", "raw_logprobs")  # log_softmax'd prompt logprobs
            # The LM head in fp32 (over the model's bf16 hidden states): log-likelihoods without
            # bf16 logits' steps of ~0.016, which make ties and false greedy matches common.
            values["hf_overrides"] = {"fp32_lm_head": True, **(values.get("hf_overrides") or {})}
            if self.device and self.device.split(":")[0] in ("ascend", "maca", "camb"):
                values.setdefault("device_type", self.device.split(":")[0])
        wrong = [k for k in values if k not in names]
        if wrong:
            other = "turbomind" if backend == "pytorch" else "pytorch"
            raise ModelArgsError(
                f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not settings of "
                f"lmdeploy's {cls.__name__} (backend={backend}). Use backend={other} for them, "
                "or drop them."
            )
        values = {k: v for k, v in values.items() if v is not None}
        if "quant_policy" in values and backend == "pytorch":
            from lmdeploy.messages import QuantPolicy

            values["quant_policy"] = QuantPolicy(values["quant_policy"])
        try:
            return cls(**values)
        except (TypeError, ValueError, AssertionError) as e:
            raise ModelArgsError(
                f"lmdeploy rejected the engine settings {values} for {cls.__name__}: {e}"
            ) from e


def _engine_field_names(backend: Backend) -> set[str]:
    require_lmdeploy()
    from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig

    classes = {
        "pytorch": (PytorchEngineConfig,),
        "turbomind": (TurbomindEngineConfig,),
        "auto": (PytorchEngineConfig, TurbomindEngineConfig),
    }[backend]
    return {f.name for c in classes for f in dataclasses.fields(c)}


def _check_engine_extra(extra: dict[str, Any], backend: Backend) -> dict[str, Any]:
    names = _engine_field_names(backend)
    ours = LMDeployArgs.field_names()
    for key in extra:
        if key not in names:
            where = "lmdeploy's engine config" + ("" if backend == "auto" else f" ({backend})")
            raise ModelArgsError(
                f"unknown model_arg {key!r}: not an option of --model lmdeploy nor of {where}."
                + suggest(key, list(names) + ours)
                + f" Options: {', '.join(ours)}, or any field of lmdeploy's "
                "PytorchEngineConfig / TurbomindEngineConfig."
            )
    return dict(extra)


def split_gen_kwargs(
    gen_kwargs: dict[str, Any], *, default_max_gen_toks: int, eos: str | None
) -> tuple[list[str], int, dict[str, Any]]:
    """(until with EOS added, max_gen_toks, the rest) from lm-eval gen_kwargs, whose token
    limit may be spelt max_gen_toks > max_new_tokens > max_tokens (lm-eval's priority)."""
    rest = dict(gen_kwargs or {})
    until = rest.pop("until", None)
    if until is None:
        until = []
    elif isinstance(until, str):
        until = [until]
    elif not isinstance(until, (list, tuple)) or not all(isinstance(u, str) for u in until):
        raise ValueError(f"gen_kwargs until={until!r} must be a string or a list of strings.")
    until = list(until)
    if eos and eos not in until:
        until.append(eos)
    max_gen_toks = default_max_gen_toks
    for key in ("max_tokens", "max_new_tokens", "max_gen_toks"):
        value = rest.pop(key, None)
        if value is not None:
            max_gen_toks = _as_int(f"gen_kwargs {key}", value, minimum=1)
    return until, max_gen_toks, rest


def generation_config(
    gen_kwargs: dict[str, Any],
    *,
    max_gen_toks: int,
    default_seed: int | None,
    stop_token_ids: list[int],
):
    """lm-eval gen_kwargs -> lmdeploy GenerationConfig. Unknown keys are an error.

    Greedy unless `do_sample` (or a positive temperature without `do_sample`). `stop_token_ids`
    (the chat template's end-of-turn token, single-token `until` strings) stop the engine early;
    lmdeploy adds every EOS id itself. The stopping token's text is never part of the reply
    (`include_stop_str_in_output=False`); `until` strings are cut from the text afterwards.
    """
    from lmdeploy import GenerationConfig

    gen_kwargs = dict(gen_kwargs or {})
    temperature = gen_kwargs.pop("temperature", None)
    do_sample = gen_kwargs.pop("do_sample", None)
    if do_sample is None:
        do_sample = temperature is not None and float(temperature) > 0
    do_sample = _as_bool("do_sample", do_sample)
    values: dict[str, Any] = {
        "max_new_tokens": max_gen_toks,
        "do_sample": do_sample,
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
    }
    if stop_token_ids:
        values["stop_token_ids"] = list(stop_token_ids)
    if do_sample:
        values["temperature"] = 1.0 if temperature is None else float(temperature)
        if default_seed is not None:
            values["random_seed"] = default_seed
    names = {f.name for f in dataclasses.fields(GenerationConfig)}
    for key, value in gen_kwargs.items():
        target = GEN_KWARG_ALIASES.get(key, key)
        if target in GEN_KWARGS_REFUSED:
            raise ValueError(
                f"gen_kwargs {key}={value!r}: the lmdeploy model sets {target} itself; drop it."
            )
        if target not in names:
            raise ValueError(
                f"gen_kwargs has {key}={value!r}, which lmdeploy's GenerationConfig does not know."
                + suggest(key, names | set(GEN_KWARG_ALIASES) | {"temperature", "do_sample"})
            )
        values[target] = value
    try:
        return GenerationConfig(**values)
    except (AssertionError, TypeError, ValueError) as e:
        raise ValueError(
            f"gen_kwargs {gen_kwargs} rejected by lmdeploy's GenerationConfig: {e}"
        ) from e
