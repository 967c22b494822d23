"""Our BERT matches HF transformers (PyTorch) and HF peft on random-weight checkpoints.

peft 0.21 prefix tuning on BERT (SEQ_CLS / FEATURE_EXTRACTION) passes a DynamicCache of
per-layer keys/values [B, heads, Lp, D] and a prefix-extended attention mask; BertEmbeddings
then starts positions at the cache length Lp. That is exactly our kv form. peft's prompt tuning
puts the prompt in front of the word embeddings (positions 0.., token type 0): our prompt form.
"""
import jax.numpy as jnp
import numpy as np
import peft
import pytest
import torch
import transformers

import hf_refs
from prefix_jax.models import build_model
from prefix_jax.prefixes import Prefix
from prefix_jax.weights.hf import load_hf_dir

TOL = 1e-4


def tiny_hf_bert(path, cls=transformers.BertModel, seed=0, num_labels=3):
  cfg = transformers.BertConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=48,
                                max_position_embeddings=24, type_vocab_size=2,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                num_labels=num_labels, attn_implementation="eager")
  torch.manual_seed(seed)
  model = hf_refs._perturb(cls(cfg), seed).eval()
  model.save_pretrained(path, safe_serialization=True)
  return model


@pytest.fixture(scope="module")
def seq_cls(tmp_path_factory):
  """(HF BertForSequenceClassification, cfg, model, params): names carry 'bert.'."""
  path = tmp_path_factory.mktemp("bert_cls")
  ref = tiny_hf_bert(path, transformers.BertForSequenceClassification)
  cfg, params, _ = load_hf_dir(path)
  return ref, cfg, build_model(cfg), params


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
  """(HF BertModel, cfg, model, params): bare names, no head (an all-MiniLM-L6-v2 layout)."""
  path = tmp_path_factory.mktemp("bert_bare")
  ref = tiny_hf_bert(path, transformers.BertModel, seed=1)
  cfg, params, _ = load_hf_dir(path)
  return ref, cfg, build_model(cfg), params


def _batch(cfg, seed=0, lengths=(9, 6, 3), t=9):
  rng = np.random.RandomState(seed)
  ids = rng.randint(0, cfg.vocab_size, (len(lengths), t))
  mask = np.arange(t)[None] < np.asarray(lengths)[:, None]  # BERT pads on the right
  types = rng.randint(0, 2, ids.shape) * mask
  return ids, mask, types


def _t(x):
  return torch.tensor(np.asarray(x)).long()


def test_hidden_pooled_logits_match_transformers_with_padding(seq_cls):
  ref, cfg, model, params = seq_cls
  assert cfg.num_labels == 3
  ids, mask, types = _batch(cfg)
  out = model.apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask),
                    token_types=jnp.asarray(types))
  with torch.no_grad():
    base = ref.bert(input_ids=_t(ids), attention_mask=_t(mask), token_type_ids=_t(types))
    logits = ref(input_ids=_t(ids), attention_mask=_t(mask), token_type_ids=_t(types)).logits
  np.testing.assert_allclose(np.asarray(out.hidden)[mask], base.last_hidden_state.numpy()[mask],
                             atol=TOL, rtol=0)
  np.testing.assert_allclose(out.pooled, base.pooler_output.numpy(), atol=TOL, rtol=0)
  np.testing.assert_allclose(out.logits, logits.numpy(), atol=TOL, rtol=0)
  # Token types are really used (type 1 rows differ from all-zero types).
  zero = model.apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask))
  assert np.abs(np.asarray(zero.hidden - out.hidden)[mask]).max() > 1e-2


def test_bare_bert_model_and_sentence_embedding(bare):
  ref, cfg, model, params = bare
  assert cfg.num_labels == 0 and "classifier" not in params
  ids, mask, _ = _batch(cfg, seed=2)
  out = model.apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask))
  assert out.logits is None
  with torch.no_grad():
    theirs = ref(input_ids=_t(ids), attention_mask=_t(mask)).last_hidden_state.numpy()
  np.testing.assert_allclose(np.asarray(out.hidden)[mask], theirs[mask], atol=TOL, rtol=0)
  # sentence-transformers: mean over real tokens, then L2 normalisation.
  m = mask[..., None]
  ref_emb = (theirs * m).sum(1) / m.sum(1)
  ref_emb /= np.linalg.norm(ref_emb, axis=-1, keepdims=True)
  emb = model.apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask),
                    method=type(model).sentence_embedding)
  np.testing.assert_allclose(emb, ref_emb, atol=TOL, rtol=0)


def cache_to_prefix(layers) -> Prefix:
  """peft's per-layer cache tensors [B, heads, Lp, D] (example 0) -> our kv Prefix."""
  keys = np.stack([np.asarray(layer.keys[0].detach()).transpose(1, 0, 2) for layer in layers])
  values = np.stack([np.asarray(layer.values[0].detach()).transpose(1, 0, 2) for layer in layers])
  return Prefix(keys=jnp.asarray(keys), values=jnp.asarray(values))


def _randomise(weight, seed):
  values = np.random.RandomState(seed).randn(*weight.shape).astype(np.float32)
  with torch.no_grad():
    weight.copy_(torch.tensor(values))
  return values


@pytest.mark.parametrize("task", ["SEQ_CLS", "FEATURE_EXTRACTION"])
def test_kv_prefix_matches_peft_prefix_tuning(tmp_path, task):
  cls = (transformers.BertForSequenceClassification if task == "SEQ_CLS"
         else transformers.BertModel)
  ref = tiny_hf_bert(tmp_path, cls)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  lp = 4
  pm = peft.get_peft_model(ref, peft.PrefixTuningConfig(task_type=task, num_virtual_tokens=lp,
                                                        prefix_projection=False))
  emb = _randomise(pm.prompt_encoder["default"].embedding.weight, 0)
  # peft's layout: E [Lp, L * 2 * H] viewed as [Lp, L, 2 (key, value), heads, D].
  prefix = cache_to_prefix(pm.get_prompt(1).layers)
  kv = emb.reshape(lp, cfg.num_layers, 2, cfg.num_heads, cfg.head_dim)
  np.testing.assert_array_equal(prefix.keys, kv[:, :, 0].transpose(1, 0, 2, 3))
  ids, mask, _ = _batch(cfg, seed=3)
  with torch.no_grad():
    theirs = pm(input_ids=_t(ids), attention_mask=_t(mask))
  ours = model.apply({"params": params}, jnp.asarray(ids), prefix=prefix, mask=jnp.asarray(mask))
  plain = model.apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask))
  if task == "SEQ_CLS":
    np.testing.assert_allclose(ours.logits, theirs.logits.numpy(), atol=TOL, rtol=0)
    assert np.abs(np.asarray(ours.logits - plain.logits)).max() > 1e-3
  else:
    np.testing.assert_allclose(np.asarray(ours.hidden)[mask],
                               theirs.last_hidden_state.numpy()[mask], atol=TOL, rtol=0)
    assert np.abs(np.asarray(ours.hidden - plain.hidden)[mask]).max() > 1e-2


def test_prompt_matches_peft_prompt_tuning(tmp_path):
  ref = tiny_hf_bert(tmp_path, transformers.BertModel, seed=4)
  cfg, params, _ = load_hf_dir(tmp_path)
  model = build_model(cfg)
  lp = 3
  pm = peft.get_peft_model(ref, peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION",
                                                        num_virtual_tokens=lp))
  prompt = _randomise(pm.prompt_encoder["default"].embedding.weight, 5)
  ids, mask, _ = _batch(cfg, seed=6)
  with torch.no_grad():
    theirs = pm(input_ids=_t(ids), attention_mask=_t(mask)).last_hidden_state.numpy()[:, lp:]
  ours = model.apply({"params": params}, jnp.asarray(ids), prefix=Prefix(prompt=prompt),
                     mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(ours.hidden)[mask], theirs[mask], atol=TOL, rtol=0)


def test_loader_skips_pretraining_heads_and_names_a_config_mismatch(tmp_path):
  tiny_hf_bert(tmp_path, transformers.BertForMaskedLM, num_labels=2)
  cfg, params, _ = load_hf_dir(tmp_path)  # the cls.* MLM head is not part of the encoder
  assert cfg.num_labels == 0 and not {"classifier", "pooler"} & set(params)
  ids, mask, _ = _batch(cfg, seed=7)
  out = build_model(cfg).apply({"params": params}, jnp.asarray(ids), mask=jnp.asarray(mask))
  assert out.pooled is None and out.logits is None
  config = tmp_path / "config.json"
  config.write_text(config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'))
  with pytest.raises(ValueError, match="encoder.layer.2.attention.self.query.weight' missing"):
    load_hf_dir(tmp_path)
