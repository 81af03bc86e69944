"""The built-in model's inference without transformers: a plain torch forward pass of its
Qwen2 architecture and its byte-level BPE tokenizer read straight from `tokenizer.json`.

Why: evaluation, `plannerl play` and training's rollouts only run forward passes, and
importing transformers' Qwen2 alone took 2.4 s of the 10.8 s `plannerl eval` of ten
double_cheese_burger seeds (docs/evaluation.md); per call, its mask, cache and output classes
cost 5-10% at batch 8 (more at batch 1). This module runs the same computation (the same weights, the
same rotary embedding, RMSNorm, attention and SwiGLU, in the same order) behind the small
interface the scorer (`plannerl.agents.scoring`) and the decoder (`plannerl.agents.decoding`)
use: `model(input_ids=, attention_mask=, position_ids=, past_key_values=, use_cache=,
logits_to_keep=)` returning `.logits` and `.past_key_values`, so both paths share every line of
scoring and decoding. Scores agree with transformers' within float tolerance (tested).

Only the models `plannerl train` builds qualify (`native_supported`): a qwen2 config with
default rotary embedding and full attention, one safetensors file, our own tokenizer. Any other
model, a hub Qwen2.5 included, loads through transformers (`plannerl.agents.model.load_model`).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F  # noqa: N812

from plannerl.agents.model import OUR_TOKENIZER_CLASSES
from plannerl.errors import PlannerlError


def native_supported(folder: str | Path) -> bool:
    """Whether `folder` holds a model this module runs: the built-in architecture and tokenizer."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    rope = config.get("rope_parameters") or {"rope_type": "default"}
    return (config.get("model_type") == "qwen2" and config.get("architectures") == ["Qwen2ForCausalLM"]
            and rope.get("rope_type") == "default" and config.get("rope_scaling") is None
            and not config.get("use_sliding_window") and config.get("hidden_act") == "silu"
            and tokenizer_config.get("tokenizer_class") in OUR_TOKENIZER_CLASSES
            and (folder / "tokenizer.json").is_file() and (folder / "model.safetensors").is_file()
            and not (folder / "adapter_config.json").exists())


def load_native(folder: str | Path):
    """(model, tokenizer) of a built-in model folder, without importing transformers."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    try:
        weights = load_file(folder / "model.safetensors")
    except (SafetensorError, OSError) as exc:
        raise PlannerlError(f"{folder}: cannot load the weights: {str(exc).splitlines()[0]}") from None
    try:
        model = NativeQwen2(config, weights)
    except (KeyError, ValueError) as exc:  # a key config.json lacks, a missing tensor, or one of another shape
        raise PlannerlError(f"{folder}: the weights do not match config.json ({exc})") from None
    return model.eval(), NativeTokenizer(folder)


class NativeTokenizer:
    """The subset of a transformers tokenizer that plannerl's inference uses, over `tokenizers`."""

    chat_template = None

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        settings = json.loads((folder / "tokenizer_config.json").read_text())
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.eos_token = settings.get("eos_token")
        self.pad_token = settings.get("pad_token") or self.eos_token
        self.eos_token_id = self._tokenizer.token_to_id(self.eos_token) if self.eos_token else None
        self.pad_token_id = self._tokenizer.token_to_id(self.pad_token) if self.pad_token else None

    def __call__(self, text: str | list[str], add_special_tokens: bool = True) -> dict:
        if isinstance(text, str):
            return {"input_ids": self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}
        found = self._tokenizer.encode_batch(text, add_special_tokens=add_special_tokens)
        return {"input_ids": [encoding.ids for encoding in found]}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)


class NativeCache:
    """Each layer's keys and values so far, (batch, heads, positions, head size); a forward
    pass given the cache appends its own, as transformers' DynamicCache does."""

    def __init__(self, layers: int) -> None:
        self.keys: list = [None] * layers
        self.values: list = [None] * layers

    def extend(self, layer: int, keys, values):
        if self.keys[layer] is not None:
            keys = torch.cat([self.keys[layer], keys], dim=2)
            values = torch.cat([self.values[layer], values], dim=2)
        self.keys[layer], self.values[layer] = keys, values
        return keys, values

    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def batch_select_indices(self, rows) -> None:
        """Keep (and repeat) the given batch rows, in place (the scorer's cache-copy fallback)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]


class NativeQwen2(torch.nn.Module):
    """Qwen2ForCausalLM's forward pass, as plain tensor operations over its state dict."""

    LAYER_WEIGHTS = ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                     "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight",
                     "self_attn.v_proj.bias", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                     "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")

    def __init__(self, config: dict, weights: dict) -> None:
        super().__init__()
        self.config = SimpleNamespace(**config, _attn_implementation="sdpa")
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or config["hidden_size"] // self.heads
        self.eps = config["rms_norm_eps"]
        theta = (config.get("rope_parameters") or {}).get("rope_theta", config.get("rope_theta", 10000.0))
        self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim),
                             persistent=False)
        self.state = torch.nn.ParameterList()  # every tensor, so .parameters() names the device and dtype

        hidden, mlp = config["hidden_size"], config["intermediate_size"]
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        shapes = {"model.embed_tokens.weight": (config["vocab_size"], hidden), "model.norm.weight": (hidden,),
                  "lm_head.weight": (config["vocab_size"], hidden), "input_layernorm.weight": (hidden,),
                  "self_attn.q_proj.weight": (q_size, hidden), "self_attn.q_proj.bias": (q_size,),
                  "self_attn.k_proj.weight": (kv_size, hidden), "self_attn.k_proj.bias": (kv_size,),
                  "self_attn.v_proj.weight": (kv_size, hidden), "self_attn.v_proj.bias": (kv_size,),
                  "self_attn.o_proj.weight": (hidden, q_size), "post_attention_layernorm.weight": (hidden,),
                  "mlp.gate_proj.weight": (mlp, hidden), "mlp.up_proj.weight": (mlp, hidden), "mlp.down_proj.weight": (hidden, mlp)}

        def take(name: str):
            if name not in weights:
                raise ValueError(f"no tensor {name}")
            wanted = shapes[name.split(".", 3)[-1] if name.startswith("model.layers.") else name]
            if tuple(weights[name].shape) != wanted:
                raise ValueError(f"{name} is {tuple(weights[name].shape)}, config.json says {wanted}")
            tensor = torch.nn.Parameter(weights[name])
            self.state.append(tensor)
            return tensor

        self.embed = take("model.embed_tokens.weight")
        self.norm = take("model.norm.weight")
        self.lm_head = self.embed if config.get("tie_word_embeddings", True) else take("lm_head.weight")
        # per layer, its weights in LAYER_WEIGHTS order (Qwen2's q/k/v projections have biases, o_proj none)
        self.blocks = [[take(f"model.layers.{i}.{name}") for name in self.LAYER_WEIGHTS]
                       for i in range(config["num_hidden_layers"])]

    def get_input_embeddings(self):
        return SimpleNamespace(weight=self.embed)

    def get_output_embeddings(self):
        return SimpleNamespace(weight=self.lm_head)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
                logits_to_keep: int = 0):
        batch, length = input_ids.shape
        cache = past_key_values if past_key_values is not None else (NativeCache(len(self.blocks)) if use_cache else None)
        past = cache.length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + length, device=input_ids.device)[None].expand(batch, -1)
        hidden = F.embedding(input_ids, self.embed)
        mask = additive_mask(attention_mask, batch, length, past, hidden.dtype, hidden.device)
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        angles = torch.cat([freqs, freqs], dim=-1)
        cos, sin = angles.cos().to(hidden.dtype)[:, None], angles.sin().to(hidden.dtype)[:, None]
        for layer, (norm1, wq, bq, wk, bk, wv, bv, wo, norm2, gate, up, down) in enumerate(self.blocks):
            x = rms_norm(hidden, norm1, self.eps)
            q = F.linear(x, wq, bq).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            k = F.linear(x, wk, bk).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            v = F.linear(x, wv, bv).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            if cache is not None:
                k, v = cache.extend(layer, k, v)
            if self.kv_heads != self.heads:
                k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
                v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            hidden = hidden + F.linear(attended.transpose(1, 2).reshape(batch, length, -1), wo)
            x = rms_norm(hidden, norm2, self.eps)
            hidden = hidden + F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)
        hidden = rms_norm(hidden, self.norm, self.eps)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return SimpleNamespace(logits=F.linear(hidden, self.lm_head), past_key_values=cache)


def rms_norm(x, weight, eps: float):
    """Qwen2's RMSNorm: normalised in float32, scaled in the input's dtype."""
    dtype = x.dtype
    x = x.float()
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).to(dtype)


def additive_mask(attention_mask, batch: int, length: int, past: int, dtype, device):
    """(batch, 1, length, past + length): 0 where a token may look, the dtype's minimum
    elsewhere (so a padding row that sees nothing averages instead of turning NaN). A 2-D 0/1
    mask over the past and new tokens is made causal; a 4-D one is used as given."""
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask.to(dtype)
    columns = torch.arange(past + length, device=device)
    visible = (columns[None, :] <= past + torch.arange(length, device=device)[:, None])[None, None]
    if attention_mask is not None:
        visible = visible & attention_mask.bool()[:, None, None, :]
    visible = visible.expand(batch, 1, length, past + length)
    return torch.zeros(visible.shape, dtype=dtype, device=device).masked_fill(~visible, torch.finfo(dtype).min)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)
