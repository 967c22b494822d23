"""Our BART matches HF transformers (PyTorch), HF peft, and hand-built prefix references.

peft 0.21 prefix tuning on BART (SEQ_2_SEQ_LM) builds an EncoderDecoderCache whose
self-attention part holds per-decoder-layer keys/values and whose cross-attention part it
replaces with an empty cache: only the decoder self-attention is prefixed (the encoder gets
no prefix, the cross-attention none either); decoder positions start at Lp. The encoder and
cross-attention prefixes are checked against HF's own attention modules patched to put the
prefix keys/values in front (positions shifted by Lp as ours), independent of our code.
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
from prefix_jax.prefixes.seq2seq import Seq2SeqPrefix
from prefix_jax.weights.hf import load_hf_dir

TOL = 1e-4
LP = 3


def tiny_hf_bart(path, seed=0, enc_layers=2, dec_layers=3, scale_embedding=True, tie=True):
  cfg = transformers.BartConfig(
      vocab_size=61, d_model=32, encoder_layers=enc_layers, decoder_layers=dec_layers,
      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
      decoder_ffn_dim=48, max_position_embeddings=24, dropout=0.0, attention_dropout=0.0,
      activation_dropout=0.0, scale_embedding=scale_embedding, tie_word_embeddings=tie,
      pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
      attn_implementation="eager")
  torch.manual_seed(seed)
  model = hf_refs._perturb(transformers.BartForConditionalGeneration(cfg), seed)
  with torch.no_grad():  # a buffer, not a parameter: randomise it too
    model.final_logits_bias.add_(0.5 * torch.randn(model.final_logits_bias.shape))
  model.eval().save_pretrained(path, safe_serialization=True)
  return model


def _batch(cfg, seed=0):
  """src [3, 9] and tgt [3, 7] with right padding, as BART is used."""
  rng = np.random.RandomState(seed)
  src = rng.randint(3, cfg.vocab_size, (3, 9))
  tgt = rng.randint(3, cfg.vocab_size, (3, 7))
  src_mask = np.arange(9)[None] < np.asarray([9, 5, 2])[:, None]
  tgt_mask = np.arange(7)[None] < np.asarray([7, 4, 1])[:, None]
  return src, tgt, src_mask, tgt_mask


def _t(x):
  return torch.tensor(np.asarray(x)).long()


def _torch_logits(ref, src, tgt, src_mask, tgt_mask):
  with torch.no_grad():
    return ref(input_ids=_t(src), attention_mask=_t(src_mask), decoder_input_ids=_t(tgt),
               decoder_attention_mask=_t(tgt_mask), use_cache=False).logits.numpy()


def _ours(model, params, src, tgt, src_mask, tgt_mask, prefix=None):
  return np.asarray(model.apply({"params": params}, jnp.asarray(src), jnp.asarray(tgt),
                                prefix=prefix, src_mask=jnp.asarray(src_mask),
                                tgt_mask=jnp.asarray(tgt_mask)))


@pytest.mark.parametrize("variant", ["scaled_tied_2x3", "unscaled_untied_2x2"])
def test_logits_match_transformers_with_padding(tmp_path, variant):
  scaled = variant.startswith("scaled")
  ref = tiny_hf_bart(tmp_path, enc_layers=2, dec_layers=3 if scaled else 2,
                     scale_embedding=scaled, tie=scaled)
  cfg, params, _ = load_hf_dir(tmp_path)
  assert cfg.tie_embeddings == scaled and ("lm_head" in params) != scaled
  model = build_model(cfg)
  src, tgt, src_mask, tgt_mask = _batch(cfg)
  ours = _ours(model, params, src, tgt, src_mask, tgt_mask)
  theirs = _torch_logits(ref, src, tgt, src_mask, tgt_mask)
  np.testing.assert_allclose(ours[tgt_mask], theirs[tgt_mask], atol=TOL, rtol=0)
  # encode/decode compose to the same logits.
  memory = model.apply({"params": params}, jnp.asarray(src), src_mask=jnp.asarray(src_mask),
                       method=type(model).encode)
  dec = model.apply({"params": params}, jnp.asarray(tgt), memory, tgt_mask=jnp.asarray(tgt_mask),
                    method=type(model).decode)
  np.testing.assert_allclose(np.asarray(dec), ours, atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  """A 2+2-layer checkpoint (peft sizes one prefix by num_hidden_layers = encoder_layers)."""
  path = tmp_path_factory.mktemp("bart")
  tiny_hf_bart(path, seed=1, enc_layers=2, dec_layers=2)
  cfg, params, _ = load_hf_dir(path)
  return path, cfg, build_model(cfg), params


def _fresh(path):
  return transformers.BartForConditionalGeneration.from_pretrained(path).eval()


def _randomise(weight, seed):
  values = np.random.RandomState(seed).randn(*weight.shape).astype(np.float32)
  with torch.no_grad():
    weight.copy_(torch.tensor(values))
  return values


def _cache_to_prefix(layers) -> Prefix:
  """Per-layer cache tensors [B, heads, Lp, D] (example 0) -> our kv Prefix [L, Lp, heads, D]."""
  def stack(name):
    return jnp.asarray(np.stack([np.asarray(getattr(layer, name)[0].detach()).transpose(1, 0, 2)
                                 for layer in layers]))
  return Prefix(keys=stack("keys"), values=stack("values"))


def test_decoder_kv_prefix_matches_peft_prefix_tuning(ckpt):
  path, cfg, model, params = ckpt
  pm = peft.get_peft_model(_fresh(path), peft.PrefixTuningConfig(
      task_type="SEQ_2_SEQ_LM", num_virtual_tokens=LP, prefix_projection=False))
  _randomise(pm.prompt_encoder["default"].embedding.weight, 0)
  cache = pm.get_prompt(1)
  assert len(cache.cross_attention_cache.layers) == 0  # peft prefixes no cross-attention
  prefix = Seq2SeqPrefix(decoder=_cache_to_prefix(cache.self_attention_cache.layers))
  src, tgt, src_mask, tgt_mask = _batch(cfg, seed=1)
  with torch.no_grad():
    theirs = pm(input_ids=_t(src), attention_mask=_t(src_mask), decoder_input_ids=_t(tgt),
                decoder_attention_mask=_t(tgt_mask)).logits.numpy()
  ours = _ours(model, params, src, tgt, src_mask, tgt_mask, prefix)
  np.testing.assert_allclose(ours[tgt_mask], theirs[tgt_mask], atol=TOL, rtol=0)
  plain = _ours(model, params, src, tgt, src_mask, tgt_mask)
  assert np.abs(plain - ours)[tgt_mask].max() > 1e-2


def test_encoder_prompt_matches_peft_prompt_tuning(ckpt):
  path, cfg, model, params = ckpt
  pm = peft.get_peft_model(_fresh(path), peft.PromptTuningConfig(task_type="SEQ_2_SEQ_LM",
                                                                 num_virtual_tokens=LP))
  # peft holds 2 * Lp vectors for seq2seq; prompt tuning feeds the first Lp to the encoder.
  prompt = _randomise(pm.prompt_encoder["default"].embedding.weight, 1)[:LP]
  src, tgt, src_mask, tgt_mask = _batch(cfg, seed=2)
  with torch.no_grad():
    theirs = pm(input_ids=_t(src), attention_mask=_t(src_mask), decoder_input_ids=_t(tgt),
                decoder_attention_mask=_t(tgt_mask)).logits.numpy()
  ours = _ours(model, params, src, tgt, src_mask, tgt_mask,
               Seq2SeqPrefix(encoder=Prefix(prompt=jnp.asarray(prompt))))
  np.testing.assert_allclose(ours[tgt_mask], theirs[tgt_mask], atol=TOL, rtol=0)


# Hand-built reference: HF attention modules patched to attend over [prefix ; keys]. -----------

def _prefixed_attention(attn, pk, pv):
  """Forward of HF BartAttention `attn` with prefix keys/values [heads, Lp, D] in front of its
  keys/values; every query sees every prefix slot."""
  pk, pv = torch.tensor(np.asarray(pk)), torch.tensor(np.asarray(pv))

  def forward(hidden_states, key_value_states=None, past_key_values=None, attention_mask=None,
              **_):
    b, t, _ = hidden_states.shape
    src = hidden_states if key_value_states is None else key_value_states
    heads = lambda x: x.view(b, x.shape[1], attn.num_heads, attn.head_dim).transpose(1, 2)
    q = heads(attn.q_proj(hidden_states)) * attn.scaling
    k = torch.cat([pk.expand(b, -1, -1, -1), heads(attn.k_proj(src))], dim=2)
    v = torch.cat([pv.expand(b, -1, -1, -1), heads(attn.v_proj(src))], dim=2)
    scores = q @ k.transpose(2, 3)
    if attention_mask is not None:
      if attention_mask.dtype == torch.bool:
        attention_mask = torch.where(attention_mask, 0.0, torch.finfo(scores.dtype).min)
      visible = torch.zeros((*attention_mask.shape[:-1], pk.shape[1]))
      scores = scores + torch.cat([visible, attention_mask], dim=-1)
    out = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, -1)
    return attn.out_proj(out), None
  return forward


def _shift_positions(embed_positions, shift):
  orig = embed_positions.forward

  def forward(input_ids, past_key_values_length=0, position_ids=None):
    if position_ids is not None:
      return orig(input_ids, past_key_values_length, position_ids=position_ids + shift)
    return orig(input_ids, past_key_values_length + shift)
  embed_positions.forward = forward


def _kv(cfg, layers, seed):
  rng = np.random.RandomState(seed)
  shape = (layers, LP, cfg.num_heads, cfg.head_dim)
  return Prefix(keys=jnp.asarray(rng.randn(*shape), jnp.float32),
                values=jnp.asarray(rng.randn(*shape), jnp.float32))


@pytest.mark.parametrize("parts", [("encoder",), ("cross",), ("encoder", "decoder", "cross")])
def test_kv_prefixes_match_hand_built_reference(ckpt, parts):
  path, cfg, model, params = ckpt
  prefix = Seq2SeqPrefix(**{p: _kv(cfg, 2, seed=i) for i, p in enumerate(parts)})
  ref = _fresh(path)
  if prefix.encoder is not None:
    _shift_positions(ref.model.encoder.embed_positions, LP)
    for l, layer in enumerate(ref.model.encoder.layers):
      layer.self_attn.forward = _prefixed_attention(
          layer.self_attn, *(x[l].transpose(1, 0, 2) for x in (prefix.encoder.keys,
                                                                prefix.encoder.values)))
  if prefix.decoder is not None:
    _shift_positions(ref.model.decoder.embed_positions, LP)
  for l, layer in enumerate(ref.model.decoder.layers):
    for name, attn in (("decoder", layer.self_attn), ("cross", layer.encoder_attn)):
      p = getattr(prefix, name)
      if p is not None:
        attn.forward = _prefixed_attention(attn, p.keys[l].transpose(1, 0, 2),
                                           p.values[l].transpose(1, 0, 2))
  src, tgt, src_mask, tgt_mask = _batch(cfg, seed=3)
  theirs = _torch_logits(ref, src, tgt, src_mask, tgt_mask)
  ours = _ours(model, params, src, tgt, src_mask, tgt_mask, prefix)
  np.testing.assert_allclose(ours[tgt_mask], theirs[tgt_mask], atol=TOL, rtol=0)
  plain = _ours(model, params, src, tgt, src_mask, tgt_mask)
  assert np.abs(plain - ours)[tgt_mask].max() > 1e-2
