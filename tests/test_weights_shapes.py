"""One source of parameter shapes: the loaders check against shapes traced from the model."""
import numpy as np
import pytest

from prefix_jax.models import ModelConfig
from prefix_jax.weights import WeightsError
from prefix_jax.weights.shapes import check_params, expected_shapes

# GQA (4 query heads, 2 kv heads of 8) and an untied head: every dimension differs.
CFG = ModelConfig(arch="llama", vocab_size=61, hidden_size=32, num_layers=2, num_heads=4,
                  num_kv_heads=2, intermediate_size=48, max_positions=64)


def _by_hand(cfg, tied):
  h, i, v, q, kv = 32, 48, 61, 32, 16
  tree = {"embed/embedding": (v, h), "final_norm/scale": (h,)}
  for l in range(cfg.num_layers):
    tree.update({f"layers_{l}/{k}": s for k, s in {
        "attn_norm/scale": (h,), "mlp_norm/scale": (h,),
        "attn/q_proj/kernel": (h, q), "attn/k_proj/kernel": (h, kv),
        "attn/v_proj/kernel": (h, kv), "attn/o_proj/kernel": (q, h),
        "mlp/gate_proj/kernel": (h, i), "mlp/up_proj/kernel": (h, i),
        "mlp/down_proj/kernel": (i, h)}.items()})
  if not tied:
    tree["lm_head/kernel"] = (h, v)
  return tree


@pytest.mark.parametrize("tied", [False, True])
def test_llama_shapes_from_the_model_match_the_tree_by_hand(tied):
  cfg = CFG.replace(tie_embeddings=tied)
  assert expected_shapes(cfg) == _by_hand(cfg, tied)


def _params(shapes):
  tree = {}
  for name, shape in shapes.items():
    *keys, leaf = name.split("/")
    node = tree
    for k in keys:
      node = node.setdefault(k, {})
    node[leaf] = np.zeros(shape, np.float32)
  return tree


def test_check_params_names_the_first_problem():
  good = _by_hand(CFG, tied=False)
  check_params(_params(good), CFG, "src")
  bad_shape = dict(good, **{"layers_1/attn/k_proj/kernel": (32, 32)})
  with pytest.raises(WeightsError, match=r"src: parameter layers_1/attn/k_proj/kernel has "
                     r"shape \(32, 32\), config expects \(32, 16\)"):
    check_params(_params(bad_shape), CFG, "src")
  with pytest.raises(WeightsError, match="parameter lm_head/kernel missing"):
    check_params(_params({k: s for k, s in good.items() if k != "lm_head/kernel"}), CFG, "src")
  with pytest.raises(WeightsError, match=r"unexpected parameters \['layers_2/attn_norm/scale'\]"):
    check_params(_params(dict(good, **{"layers_2/attn_norm/scale": (32,)})), CFG, "src")


def test_configs_equal_but_for_extra_get_their_own_shapes():
  bert = ModelConfig(arch="bert", vocab_size=61, hidden_size=32, num_layers=1, num_heads=4,
                     intermediate_size=48, max_positions=64)
  assert "pooler/kernel" in expected_shapes(bert)
  assert "pooler/kernel" not in expected_shapes(bert.replace(extra={"pooler": False}))
