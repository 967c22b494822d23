"""Fixtures for the task tests: a small XSUM in XSUM's own raw format, a shared folder that
holds it beside the real shared data, and a tiny random BART (with a word-level tokenizer)
written by `transformers`."""
from __future__ import annotations

import json
from pathlib import Path

from hf_refs import _perturb
from prefix_jax import paths

TOPICS = ("news", "sport", "business", "world", "science")
WORDS = ("the match ended with a late goal for the home side . the minister said the plan "
         "would cost more than expected . shares rose after the bank reported profits . "
         "researchers found a new species in the forest . the council will vote on the "
         "proposal next week . fans celebrated in the streets after the final whistle .").split()


def _summary_file(url: str, title: str, summary: str, body: str) -> str:
  """One `.summary` file as the XSUM release writes it."""
  return (f"[SN]URL[SN]\n{url}\n\n[SN]TITLE[SN]\n{title}\n\n[SN]FIRST-SENTENCE[SN]\n{summary}\n\n"
          f"[SN]RESTBODY[SN]\n{body}\n")


def write_xsum(root: Path, n: int = 24, long_doc: str | None = None,
               url_topics: dict[int, str] | None = None) -> Path:
  """XSUM raw files under root/data/xsum: `bbc-summary-data/{id}.summary` and the split file
  (first 2/3 train, then validation, then test). Document i's URL names topic
  `url_topics.get(i)` (default: TOPICS cycled); `long_doc` replaces document 0's body."""
  url_topics = url_topics or {}
  folder = root / "data" / "xsum"
  (folder / "bbc-summary-data").mkdir(parents=True, exist_ok=True)
  ids = []
  for i in range(n):
    doc_id = str(30000000 + i)
    ids.append(doc_id)
    words = [WORDS[(7 * i + k) % len(WORDS)] for k in range(12)]
    body = long_doc if (i == 0 and long_doc) else " ".join(words)
    topic = url_topics.get(i, TOPICS[i % len(TOPICS)])
    url = f"http://www.bbc.co.uk/{'sport/' if topic == 'sport' else 'news/'}{topic}-{doc_id}"
    text = _summary_file(url, f"title {i}", " ".join(words[:6]), body)
    (folder / "bbc-summary-data" / f"{doc_id}.summary").write_text(text)
  cut = [2 * n // 3, 5 * n // 6]
  split = {"train": ids[:cut[0]], "validation": ids[cut[0]:cut[1]], "test": ids[cut[1]:]}
  (folder / "XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json").write_text(json.dumps(split))
  return folder


def shared_with_xsum(tmp_path: Path, monkeypatch, **xsum_kw) -> Path:
  """A shared folder: the real one's data and models (linked) plus an XSUM fixture, with a
  fresh TFDS data dir, offline. Returns the folder."""
  real = paths.shared_dir()
  root = tmp_path / "shared"
  (root / "data").mkdir(parents=True)
  for item in (real / "data").iterdir():
    (root / "data" / item.name).symlink_to(item)
  (root / "models").symlink_to(real / "models")
  write_xsum(root, **xsum_kw)
  monkeypatch.setenv("PREFIX_JAX_SHARED", str(root))
  monkeypatch.setenv("PREFIX_JAX_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setenv("PREFIX_JAX_OFFLINE", "1")
  return root


def tiny_hf_bart(path: Path, seed: int = 0, max_positions: int = 128):
  """A random BART written by transformers (safetensors + tokenizer.json) in `path`; its
  tokenizer is word-level over the fixture's words, with BART's <s> ... </s> post-processing
  and special ids (<s> 0, <pad> 1, </s> 2, <unk> 3). Returns the torch model."""
  import torch
  import transformers
  from tokenizers import Tokenizer, models, pre_tokenizers, processors
  vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
  for w in WORDS + [f"{i}" for i in range(10)] + ["title"]:
    vocab.setdefault(w, len(vocab))
  tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
  path.mkdir(parents=True, exist_ok=True)
  tok.save(str(path / "tokenizer.json"))
  cfg = transformers.BartConfig(
      vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=2,
      encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
      decoder_ffn_dim=32, max_position_embeddings=max_positions, dropout=0.0,
      attention_dropout=0.0, activation_dropout=0.0, pad_token_id=1, bos_token_id=0,
      eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=None,
      forced_eos_token_id=None, scale_embedding=True)
  torch.manual_seed(seed)
  model = _perturb(transformers.BartForConditionalGeneration(cfg), seed).eval()
  model.save_pretrained(path, safe_serialization=True)
  return model
