"""A run exports what it trained and `evaluate` scores exactly those weights (full and top-k
fine-tuning; LoRA folded into the backbone or, with lora.merge=False, passed as a delta, the
same predictions; adapters passed as a delta); summary.json records the trainable share; a
method that does not apply stops `python -m prefix_jax.main` with one line and exit 2."""
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import prefix_jax.evaluate as evaluate_lib
from prefix_jax.methods import build_method
from prefix_jax.train.method_run import METHOD_FILE, load_trained, prepare
from prefix_jax.models import build_model
from prefix_jax.models.deltas import Delta
from prefix_jax.train.backbone import load_backbone
from prefix_jax.train.checkpoint import Checkpointer
from prefix_jax.train.loop import train_and_evaluate
from prefix_jax.train.optim import build_optimizer
from prefix_jax.train.step import init_state, merge_backbone
from run_tiny import tiny_config

ROOT = Path(__file__).resolve().parent.parent
E2E = str(ROOT / "configs" / "e2e.py")
TOKENS = jnp.arange(3, 15)[None]


def _run(tmp_path_factory, method):
  wd = tmp_path_factory.mktemp(method)
  config = tiny_config(E2E, f"method={method}", **{"train.num_steps": 4,
                                                    "optim.learning_rate": 1e-2})
  return config, wd, train_and_evaluate(config, wd)


def _restore(config, wd):
  """(pretrained, trained backbone, trained tree) of the run's last checkpoint."""
  cfg, pretrained, _ = load_backbone(config.model)
  prep = prepare(build_method(config, cfg, pretrained), build_model(cfg), pretrained,
                 jax.random.PRNGKey(0))
  ckpt = Checkpointer(wd)
  state, _ = ckpt.restore(init_state(prep.trainable, build_optimizer(config.optim, 4)))
  ckpt.close()
  return pretrained, merge_backbone(prep.frozen, state.trainable["backbone"]), state.trainable


def _logits(params, delta=None):
  cfg, _, _ = load_backbone("tiny-llama")
  return np.asarray(build_model(cfg).apply({"params": params}, TOKENS, delta=delta))


def _scored_weights(config, wd, monkeypatch):
  """(backbone, delta) `evaluate` decodes with (recorded at its call to generate_dataset)."""
  seen = {}
  real = evaluate_lib.generate_dataset

  def spy(model, backbone, *args, **kw):
    seen.update(backbone=backbone, delta=kw.get("delta"))
    return real(model, backbone, *args, **kw)

  monkeypatch.setattr(evaluate_lib, "generate_dataset", spy)
  evaluate_lib.evaluate_workdir(config, wd)
  return seen["backbone"], seen["delta"]


@pytest.mark.parametrize("method", ["finetune", "finetune_top1", "lora", "adapter"])
def test_evaluate_scores_the_trained_weights(tmp_path_factory, shared_dir, monkeypatch, method):
  config, wd, summary = _run(tmp_path_factory, method)
  pretrained, trained, tree = _restore(config, wd)
  scored, scored_delta = _scored_weights(config, wd, monkeypatch)
  assert (wd / "scores.json").exists()
  scale = {"lora": 16.0 / 8, "adapter": 1.0}.get(method)
  delta = Delta(tree["delta"], scale) if scale else None
  want = _logits(trained, delta)
  assert np.abs(want - _logits(pretrained)).max() > 1e-3  # training moved the model
  assert (scored_delta is None) == (method != "adapter")  # LoRA merged by default
  np.testing.assert_allclose(_logits(scored, scored_delta), want, atol=1e-5, rtol=0)
  if method == "lora":  # unmerged: the delta reaches the decoder, the predictions are the same
    merged = (wd / "predictions.txt").read_text()
    config.lora.merge = False
    scored, scored_delta = _scored_weights(config, wd, monkeypatch)
    assert scored_delta is not None
    np.testing.assert_allclose(_logits(scored, scored_delta), want, atol=1e-5, rtol=0)
    assert (wd / "predictions.txt").read_text() == merged
  _, leaves, exported_delta, _ = load_trained(wd / METHOD_FILE, load_backbone(config.model)[0])
  flat = traverse_util.flatten_dict(pretrained, sep="/")
  if method == "finetune":
    assert sorted(leaves) == sorted(flat)
  if method == "finetune_top1":  # tiny-llama has 2 layers: layers_0 and the rest stay
    assert leaves and all(k.startswith("layers_1/") for k in leaves)
    used = traverse_util.flatten_dict(scored, sep="/")
    for k, v in flat.items():
      if k not in leaves:
        np.testing.assert_array_equal(np.asarray(used[k]), np.asarray(v), err_msg=k)
  if method in ("lora", "adapter"):
    assert not leaves and exported_delta
  record = json.loads((wd / "summary.json").read_text())
  assert record["trainable_params"] == sum(
      int(np.size(x)) for x in jax.tree_util.tree_leaves(tree))
  assert record["trainable_share"] == pytest.approx(
      record["trainable_params"] / record["backbone_params"])


@pytest.mark.parametrize("arg,words", [("method=bitfit", "bitfit"),
                                       ("method=foo", "'foo' unknown"),
                                       ("method=lora,lora_rank=0", "lora.rank")])
def test_a_method_that_does_not_apply_exits_2_in_one_line(tmp_path, arg, words):
  proc = subprocess.run([sys.executable, "-m", "prefix_jax.main",
                         f"--config={E2E}:model=tiny-llama,{arg}",
                         f"--workdir={tmp_path / 'w'}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and words in lines[0], proc.stderr[-2000:]
  assert not (tmp_path / "w" / "checkpoints").exists()
