"""BART on XSUM through the trainer: the data layout and loss equal transformers', the three
prefixes each act, and decoding with no repeated n-grams equals transformers' generate (the
end-to-end XSUM run is in test_tasks_every_config.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from prefix_jax.data.batching import pack_seq2seq
from prefix_jax.data.encode import TextExample
from prefix_jax.decode import DecodeConfig, greedy_search
from prefix_jax.models import build_model
from prefix_jax.prefixes import PrefixSpec
from prefix_jax.prefixes.seq2seq_params import init_prefix_for, materialize_for
from prefix_jax.train import data as train_data
from prefix_jax.train.loss import loss_function
from prefix_jax.weights import load_pretrained
from run_tiny import tiny_config
from task_fixtures import WORDS, tiny_hf_bart

XSUM = "configs/xsum.py"


@pytest.fixture(scope="module")
def hf_bart(tmp_path_factory):
  path = tmp_path_factory.mktemp("bart")
  torch_model = tiny_hf_bart(path)
  cfg, params, tok = load_pretrained(path)
  return path, torch_model, cfg, params, tok


def _pairs(n=3):
  return [TextExample(str(i), " ".join(WORDS[i:i + 9 + i]), " ".join(WORDS[2 * i:2 * i + 4]))
          for i in range(n)]


def test_teacher_forced_loss_equals_transformers(hf_bart):
  path, torch_model, cfg, params, tok = hf_bart
  config = tiny_config(XSUM, f"model={path}")
  enc = train_data.encode_for_model(config, tok, cfg, _pairs())
  # BART's own specials: <s> source </s>; the target ends with one </s>.
  assert all(s[0] == 0 and s[-1] == 2 for s in enc.source)
  assert all(t[-1] == 2 and t[-2] != 2 for t in enc.target)
  batch = pack_seq2seq(enc.source, enc.target, [0] * 3, batch_size=4, source_length=20,
                       target_length=8, pad_id=1, start_id=cfg.decoder_start_token_id)
  loss, _ = loss_function(cfg, build_model(cfg), None)({}, params, batch)
  labels = np.where(batch["weights"] > 0, batch["targets"], -100)[:3]
  with torch.no_grad():  # transformers shifts the labels right itself
    ref = torch_model(input_ids=torch.tensor(batch["inputs"][:3]).long(),
                      attention_mask=torch.tensor(batch["mask"][:3]).long(),
                      labels=torch.tensor(labels).long()).loss.item()
  np.testing.assert_allclose(float(loss), ref, rtol=1e-5)


def test_each_of_the_three_prefixes_changes_the_logits(hf_bart):
  _, _, cfg, params, _ = hf_bart
  model = build_model(cfg)
  spec = PrefixSpec(method="kv", length=3, reparam="mlp", mlp_hidden=8, init_std=1.0)
  trainable = init_prefix_for(spec, cfg, jax.random.PRNGKey(0))
  assert set(trainable) == {"encoder", "decoder", "cross"}
  prefix = materialize_for(spec, cfg, trainable)
  src = jnp.asarray([[0, 5, 6, 7, 8, 2]])
  tgt = jnp.asarray([[2, 0, 9, 10]])
  run = lambda p: np.asarray(model.apply({"params": params}, src, tgt, prefix=p))
  full = run(prefix)
  for part in ("encoder", "decoder", "cross"):
    without = run(prefix.replace(**{part: None}))
    assert np.abs(full - without).max() > 1e-3, part


def test_no_repeat_ngram_greedy_equals_transformers_generate(hf_bart):
  _, torch_model, cfg, params, _ = hf_bart
  model = build_model(cfg)
  src = np.asarray([[0, 5, 6, 7, 8, 9, 2], [0, 11, 12, 13, 14, 15, 2]])
  for size in (0, 2):
    # EOS banned throughout (this random model would stop at once): 30 tokens each.
    out = greedy_search(model, params, jnp.asarray(src), None, None, config=DecodeConfig(
        max_new_tokens=30, eos_id=2, pad_id=1, min_length=30, no_repeat_ngram_size=size))
    with torch.no_grad():
      ref = torch_model.generate(torch.tensor(src).long(), num_beams=1, do_sample=False,
                                 max_new_tokens=30, min_new_tokens=30,
                                 no_repeat_ngram_size=size or None).numpy()[:, 1:]
    assert (np.asarray(out.lengths) == 30).all()
    for row in range(2):
      n = int(out.lengths[row])
      np.testing.assert_array_equal(np.asarray(out.tokens[row, :n]), ref[row, :n])
    for r in range(2):  # without the rule this model repeats bigrams; with it, never
      grams = [tuple(np.asarray(out.tokens[r, i:i + 2])) for i in range(29)]
      assert (len(grams) == len(set(grams))) == bool(size), (size, grams)
