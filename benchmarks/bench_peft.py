"""The PyTorch side: HF full fine-tuning and HF PEFT prefix-tuning, and the shared batches.

`TorchTrainJob` lives in a 'torch' worker. It loads (or first writes, with `create=True`) a
random-weight HF checkpoint, so that our loader reads the very same weights; for 'peft' it
wraps the model in `PrefixTuningConfig(prefix_projection=False)` and sets the prompt encoder
to the shared prefix values (`bench_common.prefix_embedding`), the layout our kv prefix maps
to (see tests/test_peft_parity.py). A step is the usual PyTorch loop: zero_grad, forward,
token cross-entropy, backward, AdamW step.

`e2e_batches` (parent side, numpy only) draws real E2E batches through our `TrainIterator`:
padded rows, which PyTorch gets cut to the longest row of each batch (what HF's padding
collators produce), and, for our side, the same examples packed (`pack_length`), as the
trainer runs them with `data.pack_length`.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks import bench_common


def hf_config(shape: dict):
  """A transformers config of a shape dict (dropout off: our trainer has none either)."""
  import transformers
  if shape["arch"] == "gpt2":
    return transformers.GPT2Config(
        vocab_size=shape["vocab_size"], n_embd=shape["hidden_size"], n_layer=shape["num_layers"],
        n_head=shape["num_heads"], n_inner=shape["intermediate_size"],
        n_positions=shape["max_positions"], activation_function=shape["activation"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=bench_common.GPT2_EOS,
        eos_token_id=bench_common.GPT2_EOS, tie_word_embeddings=True)
  if shape["arch"] == "llama":
    return transformers.LlamaConfig(
        vocab_size=shape["vocab_size"], hidden_size=shape["hidden_size"],
        num_hidden_layers=shape["num_layers"], num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"], intermediate_size=shape["intermediate_size"],
        max_position_embeddings=shape["max_positions"], rope_theta=shape["rope_theta"],
        rms_norm_eps=shape["norm_eps"], tie_word_embeddings=shape["tie_embeddings"],
        attention_dropout=0.0)
  raise ValueError(f"no HF config for arch {shape['arch']!r}")


def torch_batch(batch: dict) -> dict:
  """Our numpy batch -> torch tensors, cut to the longest row (pad-to-longest collation);
  labels are -100 where our weights are 0 (source and padding)."""
  import torch
  n = int(batch["mask"].sum(-1).max())
  labels = np.where(batch["weights"][:, :n] > 0, batch["targets"][:, :n], -100)
  return {"input_ids": torch.as_tensor(batch["inputs"][:, :n], dtype=torch.long),
          "attention_mask": torch.as_tensor(batch["mask"][:, :n], dtype=torch.long),
          "labels": torch.as_tensor(labels, dtype=torch.long)}


def e2e_batches(batch_size: int, count: int, max_length: int = 512, seed: int = 0,
                pack_length: int = 0, pack_length_step: int = 0) -> list[dict]:
  """The first `count` batches of E2E (validation split, as `make demo`) from our shuffled
  `TrainIterator` with GPT-2's tokenizer: padded rows (bucketed), or with `pack_length` the
  same examples packed into rows of that length (with `pack_length_step`, of the multiple of
  it up to `pack_length` that needs the fewest slots, per batch)."""
  from prefix_jax.data import TrainIterator, encode_examples, load_task
  from prefix_jax.weights import gpt2_tokenizer
  tokenizer = gpt2_tokenizer()
  train, _ = load_task("e2e", train_split="validation", eval_split=None)
  enc = encode_examples(train, tokenizer, max_length=max_length)
  it = TrainIterator(enc, batch_size=batch_size, pad_id=bench_common.GPT2_EOS, seed=seed,
                     pack_length=pack_length, pack_length_step=pack_length_step)
  return [next(it) for _ in range(count)]


class TorchTrainJob:
  """`method` 'full' (every parameter, AdamW) or 'peft' (HF PEFT prefix-tuning). Weights: the
  checkpoint `hf_dir`, or random ones of `shape` (saved to `hf_dir` first if `create`)."""

  def __init__(self, *, method: str, hf_dir: str | None = None, shape: dict | None = None,
               create: bool = False,
               data: str = "random", batch: int = 8, seq_len: int = 128, prefix_len: int = 10,
               seed: int = 0, prefix_seed: int = 1, learning_rate: float = 5e-5):
    import torch
    import transformers
    from benchmarks.bench_train import load_batches, random_batch

    t0 = time.perf_counter()
    if hf_dir is None or create:  # random weights of `shape`, written to hf_dir if create
      torch.manual_seed(seed)
      model = transformers.AutoModelForCausalLM.from_config(hf_config(shape))
      if create:
        model.save_pretrained(hf_dir, safe_serialization=True)
    else:
      model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    cfg = model.config
    if method == "peft":
      import peft
      model = peft.get_peft_model(model, peft.PrefixTuningConfig(
          task_type="CAUSAL_LM", num_virtual_tokens=prefix_len, prefix_projection=False))
      emb = model.prompt_encoder["default"].embedding.weight
      shape = _shape_of(cfg)
      values = bench_common.prefix_embedding(shape, prefix_len, prefix_seed)
      with torch.no_grad():
        emb.copy_(torch.as_tensor(values))
    elif method != "full":
      raise ValueError(f"method must be 'full' or 'peft', got {method!r}")
    model.train()
    self._model = model
    trainable = [p for p in model.parameters() if p.requires_grad]
    self._opt = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    if data == "random":
      tokens = bench_common.random_tokens(cfg.vocab_size, batch, seq_len, seed)
      batches = [random_batch(tokens)]
    else:
      batches = load_batches(data)
    self._batches = [torch_batch(b) for b in batches]
    self._tokens = float(sum(int((b["labels"] != -100).sum()) for b in self._batches))
    self.info = {"load_s": time.perf_counter() - t0, "threads": torch.get_num_threads(),
                 "trainable_params": sum(p.numel() for p in trainable),
                 "attn_implementation": getattr(cfg, "_attn_implementation", None),
                 "batch_shapes": sorted({tuple(b["input_ids"].shape) for b in self._batches})}

  def run(self) -> dict:
    import torch.nn.functional as F
    losses = []
    start = time.perf_counter()
    for b in self._batches:
      self._opt.zero_grad(set_to_none=True)
      logits = self._model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
      loss = F.cross_entropy(logits.flatten(0, 1).float(), b["labels"].flatten(),
                             ignore_index=-100)
      loss.backward()
      self._opt.step()
      losses.append(float(loss.detach()))
    return {"seconds": time.perf_counter() - start, "tokens": self._tokens, "loss": losses[0]}


def _shape_of(cfg) -> dict:
  """The fields `bench_common.kv_dims` reads, from a transformers config."""
  heads = cfg.num_attention_heads
  return {"num_layers": cfg.num_hidden_layers, "num_heads": heads, "hidden_size": cfg.hidden_size,
          "num_kv_heads": getattr(cfg, "num_key_value_heads", None) or heads}
