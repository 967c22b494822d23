"""llama2.c legacy checkpoints (`run.c` format) -> our LLaMA tree.

File: 7 int32 `dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len`
(vocab_size < 0: an unshared classifier follows), then float32 arrays in run.c's order:
token_embedding [V, H], rms_att [L, H], wq [L, H, H], wk [L, KV, H], wv [L, KV, H],
wo [L, H, H], rms_ffn [L, H], w1 [L, I, H], w2 [L, H, I], w3 [L, I, H], rms_final [H],
freq_cis_real / freq_cis_imag [S, D/2] (unused), wcls [V, H] (only when unshared).
Matrices are [out, in] (torch layout) with Q/K rows in the interleaved RoPE layout.
"""
from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import numpy as np

from prefix_jax.models.config import ModelConfig
from prefix_jax.weights import llama_params as lp, shapes
from prefix_jax.weights.errors import MissingFileError, WeightsError

_HEADER = struct.Struct("<7i")
_V1_MAGIC = 0x616B3432  # "ak42": llama2.c's newer (version 1/2) export format
NORM_EPS = 1e-5         # run.c's rmsnorm
ROPE_THETA = 10000.0    # run.c's RoPE


@dataclasses.dataclass(frozen=True)
class Header:
  dim: int
  hidden_dim: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  vocab_size: int
  seq_len: int
  shared_classifier: bool

  @property
  def head_size(self) -> int:
    return self.dim // self.n_heads

  @property
  def kv_dim(self) -> int:
    return self.n_kv_heads * self.head_size

  def layout(self) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every array in file order."""
    h, l, i, v = self.dim, self.n_layers, self.hidden_dim, self.vocab_size
    out = [("token_embedding", (v, h)), ("rms_att", (l, h)), ("wq", (l, h, h)),
           ("wk", (l, self.kv_dim, h)), ("wv", (l, self.kv_dim, h)), ("wo", (l, h, h)),
           ("rms_ffn", (l, h)), ("w1", (l, i, h)), ("w2", (l, h, i)), ("w3", (l, i, h)),
           ("rms_final", (h,)), ("freq_cis_real", (self.seq_len, self.head_size // 2)),
           ("freq_cis_imag", (self.seq_len, self.head_size // 2))]
    if not self.shared_classifier:
      out.append(("wcls", (v, h)))
    return out

  def file_size(self) -> int:
    return _HEADER.size + 4 * sum(int(np.prod(s)) for _, s in self.layout())

  def config(self) -> ModelConfig:
    return ModelConfig(
        arch="llama", vocab_size=self.vocab_size, hidden_size=self.dim,
        num_layers=self.n_layers, num_heads=self.n_heads, num_kv_heads=self.n_kv_heads,
        intermediate_size=self.hidden_dim, max_positions=self.seq_len, rope_theta=ROPE_THETA,
        norm_eps=NORM_EPS, tie_embeddings=self.shared_classifier, bos_token_id=1,
        eos_token_id=2)


def read_header(path) -> Header | None:
  """The header if the first 28 bytes look like a legacy llama2.c header, else None."""
  with open(path, "rb") as f:
    raw = f.read(_HEADER.size)
  if len(raw) < _HEADER.size:
    return None
  dim, hidden, layers, heads, kv_heads, vocab, seq = _HEADER.unpack(raw)
  plausible = (all(0 < x < 1 << 20 for x in (dim, hidden, layers, heads, kv_heads, abs(vocab), seq))
               and dim % heads == 0 and heads % kv_heads == 0 and (dim // heads) % 2 == 0)
  if not plausible:
    return None
  return Header(dim, hidden, layers, heads, kv_heads, abs(vocab), seq, vocab > 0)


def is_llama2c(path) -> bool:
  """A plausible header and a file size that matches it exactly."""
  h = read_header(path)
  return h is not None and Path(path).stat().st_size == h.file_size()


def read_arrays(path) -> tuple[Header, dict[str, np.ndarray]]:
  """The header and every array in run.c's layout (read-only views of a memory map)."""
  path = Path(path)
  if not path.is_file():
    raise MissingFileError(f"{path}: llama2.c checkpoint not found")
  h = read_header(path)
  if h is None:
    with open(path, "rb") as f:
      magic = f.read(4)
    if len(magic) == 4 and struct.unpack("<I", magic)[0] == _V1_MAGIC:
      raise WeightsError(f"{path}: llama2.c version-1/2 export ('ak42' magic) is not supported; "
                         "export with llama2.c's export.py --version 0 (legacy)")
    raise WeightsError(f"{path}: not a llama2.c checkpoint (implausible header)")
  size = path.stat().st_size
  if size != h.file_size():
    raise WeightsError(
        f"{path}: file is {size} bytes but its header (dim={h.dim}, hidden_dim={h.hidden_dim}, "
        f"n_layers={h.n_layers}, n_heads={h.n_heads}, n_kv_heads={h.n_kv_heads}, "
        f"vocab_size={h.vocab_size}, seq_len={h.seq_len}) implies {h.file_size()}: truncated, "
        "or the header does not match the weights")
  mm = np.memmap(path, dtype="<f4", mode="r", offset=_HEADER.size)
  arrays, off = {}, 0
  for name, shape in h.layout():
    n = int(np.prod(shape))
    arrays[name] = mm[off:off + n].reshape(shape)
    off += n
  return h, arrays


def load_llama2c(path, dtype="float32") -> tuple[ModelConfig, dict]:
  """`(ModelConfig, params)` from a legacy llama2.c checkpoint; Q/K rows are permuted to HF's
  rotate-half layout so that our model (HF RoPE convention) reproduces run.c."""
  h, a = read_arrays(path)
  cfg = h.config()
  f32 = lambda x: np.array(x, dtype=np.float32)  # copies out of the memory map
  kernel = lambda w: np.ascontiguousarray(np.asarray(w, np.float32).T)
  params = {"embed": {"embedding": f32(a["token_embedding"])},
            "final_norm": {"scale": f32(a["rms_final"])}}
  for l in range(h.n_layers):
    params[f"layers_{l}"] = {
        "attn_norm": {"scale": f32(a["rms_att"][l])},
        "attn": {
            "q_proj": {"kernel": kernel(lp.interleaved_to_half(a["wq"][l], h.n_heads))},
            "k_proj": {"kernel": kernel(lp.interleaved_to_half(a["wk"][l], h.n_kv_heads))},
            "v_proj": {"kernel": kernel(a["wv"][l])},
            "o_proj": {"kernel": kernel(a["wo"][l])},
        },
        "mlp_norm": {"scale": f32(a["rms_ffn"][l])},
        "mlp": {"gate_proj": {"kernel": kernel(a["w1"][l])},
                "up_proj": {"kernel": kernel(a["w3"][l])},
                "down_proj": {"kernel": kernel(a["w2"][l])}},
    }
  if not h.shared_classifier:
    params["lm_head"] = {"kernel": kernel(a["wcls"])}
  shapes.check_params(params, cfg, path)
  if lp.numpy_dtype(dtype) != np.float32:
    params = lp.cast_tree(params, dtype)
  return cfg, params


def find_tokenizer(path, vocab_size: int) -> Path:
  """The llama2.c tokenizer beside a checkpoint: `tok{V}.bin`, else `tokenizer.bin`."""
  folder = Path(path).parent
  for name in (f"tok{vocab_size}.bin", "tokenizer.bin"):
    if (folder / name).is_file():
      return folder / name
  raise MissingFileError(f"{path}: no llama2.c tokenizer beside it (looked for "
                         f"tok{vocab_size}.bin and tokenizer.bin in {folder})")
