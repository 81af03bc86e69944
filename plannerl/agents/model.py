"""Models: the built-in tiny causal LM, loading any local or cached Hugging Face causal LM, and
the one function that says what text a model is conditioned on.

`prompt_text` is used by SFT, GRPO and evaluation alike, so the three never disagree about
the prompt format: with a chat template (hub chat models) the row's `messages` are rendered
with it; without one (the built-in model) the row's plain `prompt` is the text.

No network: a hub name works only when it is already in the local Hugging Face cache; weights
are read from safetensors files only (pickle `.bin` weights can run code when loaded), and a
repository's own Python code runs only with `trust_remote_code=True`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from plannerl.agents.tokenizer import DEFAULT_VOCAB_SIZE, domain_texts, round_trip_failures, train_tokenizer
from plannerl.atomic import replace_folder
from plannerl.errors import PlannerlError

# name -> (hidden size, layers, attention heads, MLP size). "tiny" is the default model
# (about 4M parameters with the 2k vocabulary); "micro" is for tests.
MODEL_SIZES = {
    "micro": (64, 2, 2, 192),
    "tiny": (256, 4, 4, 768),
    "small": (384, 6, 6, 1152),
}
MAX_POSITIONS = 8192
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# the tokenizer_config.json classes our own byte-level tokenizer is saved under (transformers 4 / 5)
OUR_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")

DEFAULT_THREADS = 1
_pinned_threads: int | None = None  # what this process pinned torch to, once it has


def configure_torch_cpu(threads: int | None = None) -> None:
    """Pin torch's CPU threads: to `threads` when given (a run's `runtime.threads`), else keep
    what this process pinned before, else DEFAULT_THREADS. Loading a model calls this without
    `threads`, so it never undoes the configured count.

    One thread by default, deliberately: on a shared 2-core machine two threads made step times
    swing 20x (they spin-wait on each other while other jobs hold a core), one was stable.
    OMP_WAIT_POLICY=PASSIVE stops idle OpenMP workers from spinning; it only takes effect if set
    before torch first loads, so entry points call this before importing torch."""
    global _pinned_threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    if threads is None:
        threads = _pinned_threads if _pinned_threads is not None else DEFAULT_THREADS
    _pinned_threads = threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def build_default_model(out_dir: str | Path, *, seed: int = 0, texts=None, size: str = "tiny",
                        vocab_size: int | None = None, merges: str = "phrases") -> Path:
    """Train a tokenizer on the domain's text (plus `texts`) and save a freshly initialised
    Qwen2-style causal LM of the given size beside it, as an ordinary HF folder."""
    if size not in MODEL_SIZES:
        raise PlannerlError(f"unknown model size {size!r} (choose from {', '.join(MODEL_SIZES)})")
    configure_torch_cpu()
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    corpus = domain_texts(texts)
    tokenizer = train_tokenizer(corpus, vocab_size or DEFAULT_VOCAB_SIZE, merges)
    failures = round_trip_failures(tokenizer, corpus[:5000])
    if failures:
        raise PlannerlError(f"tokenizer does not round-trip {failures[0]!r}")
    hidden, layers, heads, mlp = MODEL_SIZES[size]
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, use_cache=True,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                               bos_token_id=None)
    return save_model(model, tokenizer, out_dir)


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """Save model (safetensors) and tokenizer as one folder, swapped into place whole: a reader
    or an interrupted run sees the old folder or the new one, never a half-written one."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.saving")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        replace_folder(staging, out_dir)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PlannerlError(f"cannot write model folder {out_dir}: {exc.strerror}") from None
    return out_dir


def resolve_model_source(name_or_path: str | Path) -> str:
    """A local model folder, or a hub name found in the local cache; anything else is refused
    (cheap: nothing is loaded, so callers can check a --model before long work)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PlannerlError(f"{path}: is a file; a model is a folder holding config.json and *.safetensors weights")
        if not (path / "config.json").is_file():
            raise PlannerlError(f"{path}: not a Hugging Face model folder (no config.json)")
        return str(path)
    if _HUB_ID.match(text):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(text, "config.json")
        if isinstance(cached, str):
            return text
        raise PlannerlError(f"model {text!r} is not a local folder and not in the Hugging Face cache, and plannerl never "
                            f"downloads (no network here): download it on a connected machine and pass its folder, "
                            f"e.g. --model ./models/{text.split('/')[-1]}")
    raise PlannerlError(f"{text}: no such model folder")


def load_model(name_or_path: str | Path, *, trust_remote_code: bool = False, dtype=None):
    """(model, tokenizer) for a local HF causal-LM folder (the built-in one or any other) or a
    hub name already in the local cache. `dtype` defaults to the weights' own dtype."""
    configure_torch_cpu()
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    source = resolve_model_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise PlannerlError(f"{source}: this model needs its repository's own code; "
                                f"pass --trust-remote-code only if you trust it") from None
        raise PlannerlError(f"{source}: cannot read config.json: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise PlannerlError(f"{source}: cannot read config.json: {str(exc).splitlines()[0]}") from None
    remote_causal = trust_remote_code and "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING and not remote_causal:
        raise PlannerlError(f"{source}: a {config.model_type!r} model is not a causal language model")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code,
                                                     use_safetensors=True, dtype=dtype if dtype is not None else "auto")
    except OSError as exc:
        first = str(exc).splitlines()[0]
        if "safetensors" in first or "model.safetensors" in str(exc):
            raise PlannerlError(f"{source}: no *.safetensors weights (pickled .bin weights are refused: loading "
                                f"them can run code)") from None
        raise PlannerlError(f"{source}: cannot load the model: {first}") from None
    except (SafetensorError, RuntimeError) as exc:  # a truncated weights file, or weights of other shapes than config.json's
        raise PlannerlError(f"{source}: cannot load the weights (corrupt, or not the shapes config.json describes): "
                            f"{str(exc).splitlines()[0]}") from None
    tokenizer = load_tokenizer_for(source, trust_remote_code=trust_remote_code)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_for_inference(name_or_path: str | Path, *, trust_remote_code: bool = False):
    """(model, tokenizer) to answer with: a model `plannerl train` built runs on plannerl's own
    forward pass (`plannerl.agents.native`: the same scores, without importing transformers or
    paying its per-call overhead); any other model loads through transformers (`load_model`)."""
    source = resolve_model_source(name_or_path)
    configure_torch_cpu()
    from plannerl.agents.native import load_native, native_supported

    if native_supported(source):
        return load_native(source)
    return load_model(source, trust_remote_code=trust_remote_code)


def load_tokenizer_for(source: str, *, trust_remote_code: bool = False):
    """The model folder's tokenizer. Our own (class PreTrainedTokenizerFast in
    tokenizer_config.json) is loaded with that class directly: AutoTokenizer would pick the
    class named by config.json's model type (Qwen2) and mangle the custom vocabulary."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer_config = Path(source) / "tokenizer_config.json"
    try:
        if tokenizer_config.is_file() and json.loads(tokenizer_config.read_text()).get("tokenizer_class") in OUR_TOKENIZER_CLASSES:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(source, local_files_only=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise PlannerlError(f"{source}: cannot load the tokenizer: {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def prompt_text(tokenizer, prompt: str, messages: list[dict] | None) -> str:
    """The exact text a model is conditioned on for one row: the chat template applied to the
    row's messages (with the assistant turn opened) when the tokenizer has a template, else the
    plain prompt. An assistant answer at the end of `messages` is left out."""
    if getattr(tokenizer, "chat_template", None) and messages:
        conversation = list(messages)
        while conversation and conversation[-1].get("role") == "assistant":
            conversation.pop()
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    return prompt


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a `prompt_text`, tokenized exactly as TRL's GRPOTrainer tokenizes prompts."""
    return tokenizer(text)["input_ids"]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
