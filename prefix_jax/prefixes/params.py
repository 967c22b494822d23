"""The trainable side: prefix parameters, their initialization, and `materialize`.

Trainable parameter trees (leaves float32), for L layers, H hidden, Hkv x D per-layer K/V:
  reparam 'none':  hidden {'hidden': [L, Lp, H]}
                   kv     {'keys': [L, Lp, Hkv, D], 'values': [L, Lp, Hkv, D]}
                   prompt {'prompt': [Lp, H]}
  reparam 'mlp':   {'embedding': [Lp, H], 'mlp': {'w1': {'kernel': [H, k], 'bias': [k]},
                                                  'w2': {'kernel': [k, out], 'bias': [out]}}}
                   with out = L*H (hidden), L*2*Hkv*D (kv), H (prompt).
A bank (spec.num_tasks = N) has the same tree with a leading [N] axis on every leaf.
`materialize(spec, params)` turns any of these into the `Prefix` the backbone consumes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from prefix_jax.models.config import ModelConfig
from prefix_jax.models.prefix_types import Prefix, PrefixShapeError
from prefix_jax.prefixes.spec import PrefixSpec

Array = jax.Array


def _direct_shapes(spec: PrefixSpec, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
  lp, nl = spec.length, cfg.num_layers
  if spec.method == "hidden":
    return {"hidden": (nl, lp, cfg.hidden_size)}
  if spec.method == "kv":
    kv = (nl, lp, cfg.num_kv_heads, cfg.head_dim)
    return {"keys": kv, "values": kv}
  return {"prompt": (lp, cfg.hidden_size)}


def _mlp_out(spec: PrefixSpec, cfg: ModelConfig) -> int:
  if spec.method == "hidden":
    return cfg.num_layers * cfg.hidden_size
  if spec.method == "kv":
    return cfg.num_layers * 2 * cfg.kv_dim
  return cfg.hidden_size


def _mlp(params: dict, x: Array) -> Array:
  h = jnp.tanh(x @ params["w1"]["kernel"] + params["w1"]["bias"])
  return h @ params["w2"]["kernel"] + params["w2"]["bias"]


def _unflatten(spec: PrefixSpec, cfg: ModelConfig, out: Array) -> dict[str, Array]:
  """MLP output [Lp, out] -> the direct parameter tree."""
  lp, nl = spec.length, cfg.num_layers
  if spec.method == "hidden":
    return {"hidden": out.reshape(lp, nl, cfg.hidden_size).swapaxes(0, 1)}
  if spec.method == "kv":
    kv = out.reshape(lp, nl, 2, cfg.num_kv_heads, cfg.head_dim).transpose(2, 1, 0, 3, 4)
    return {"keys": kv[0], "values": kv[1]}
  return {"prompt": out}


def direct_params(spec: PrefixSpec, cfg: ModelConfig, params: dict) -> dict[str, Array]:
  """The reparameterization-free tree (runs the MLP if there is one). One prefix, no bank axis."""
  if spec.reparam == "mlp":
    return _unflatten(spec, cfg, _mlp(params["mlp"], params["embedding"]))
  return params


def materialize(spec: PrefixSpec, cfg: ModelConfig, params: dict) -> Prefix:
  """The `Prefix` the backbone consumes. A bank gives a Prefix with a leading [N] axis: use
  `.gather(task_ids)` for a per-example prefix."""
  one = lambda p: Prefix(**direct_params(spec, cfg, p))
  if spec.num_tasks:
    return jax.vmap(one)(params)
  return one(params)


def fold_reparam(spec: PrefixSpec, cfg: ModelConfig, params: dict) -> tuple[PrefixSpec, dict]:
  """Runs the MLP once and returns (spec with reparam='none', direct params): after training,
  so the MLP never runs at inference."""
  if spec.reparam == "none":
    return spec, params
  fn = lambda p: direct_params(spec, cfg, p)
  folded = jax.vmap(fn)(params) if spec.num_tasks else fn(params)
  return spec.replace(reparam="none"), jax.tree_util.tree_map(np.asarray, folded)


def check_params(spec: PrefixSpec, cfg: ModelConfig, params: dict) -> None:
  """Raises PrefixShapeError if `params` does not have the shapes `spec` implies for `cfg`."""
  expected = jax.tree_util.tree_map(lambda x: x.shape, jax.eval_shape(
      lambda: init_prefix(spec, cfg, jax.random.PRNGKey(0), _random_only=True)))
  got = jax.tree_util.tree_map(lambda x: tuple(x.shape), params)
  if jax.tree_util.tree_structure(expected) != jax.tree_util.tree_structure(got) or \
      jax.tree_util.tree_leaves(expected) != jax.tree_util.tree_leaves(got):
    raise PrefixShapeError(f"prefix params have shapes {got}, spec {spec} for this model "
                           f"expects {expected}")


# -----------------------------------------------------------------------------------------------
# Initialization.

def init_prefix(spec: PrefixSpec, cfg: ModelConfig, rng: Array, *, model=None, backbone=None,
                tokenizer=None, _random_only: bool = False) -> dict:
  """Fresh trainable parameters (a bank if spec.num_tasks > 0: each task its own init).

  'vocab' and 'words' inits need the frozen `model` and `backbone` params ('words' also a
  `tokenizer`): the prefix starts as the backbone's own activations of real tokens.
  """
  if spec.num_tasks:
    rngs = jax.random.split(rng, spec.num_tasks)
    one = spec.replace(num_tasks=0)
    trees = [init_prefix(one, cfg, r, model=model, backbone=backbone, tokenizer=tokenizer,
                         _random_only=_random_only) for r in rngs]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)
  k_direct, k_tok, k_w1, k_w2 = jax.random.split(rng, 4)
  if spec.reparam == "mlp":
    if spec.init != "random" and not _random_only:
      raise PrefixShapeError(f"init='{spec.init}' is only defined for reparam='none' (the MLP "
                             "input is not an activation); use init='random' with the MLP")
    h, k, out = cfg.hidden_size, spec.mlp_hidden, _mlp_out(spec, cfg)
    return {
        "embedding": spec.init_std * jax.random.normal(k_direct, (spec.length, h)),
        "mlp": {"w1": {"kernel": jax.random.normal(k_w1, (h, k)) / np.sqrt(h),
                       "bias": jnp.zeros((k,))},
                "w2": {"kernel": jax.random.normal(k_w2, (k, out)) * (spec.init_std / np.sqrt(k)),
                       "bias": jnp.zeros((out,))}},
    }
  if spec.init == "random" or _random_only:
    shapes = _direct_shapes(spec, cfg)
    keys = jax.random.split(k_direct, len(shapes))
    return {name: spec.init_std * jax.random.normal(key, shape)
            for key, (name, shape) in zip(keys, sorted(shapes.items()))}
  if model is None or backbone is None:
    raise PrefixShapeError(f"init='{spec.init}' needs the model and its backbone params")
  if spec.init == "vocab":
    tokens = jax.random.randint(k_tok, (spec.length,), 0, cfg.vocab_size)
  else:
    if tokenizer is None:
      raise PrefixShapeError("init='words' needs a tokenizer to encode init_text")
    ids = list(tokenizer.encode(spec.init_text))
    if not ids:
      raise PrefixShapeError(f"init_text {spec.init_text!r} encodes to no tokens")
    tokens = jnp.asarray(np.resize(np.asarray(ids), spec.length))
  return activations_of(spec, model, backbone, tokens)


def activations_of(spec: PrefixSpec, model, backbone: dict, tokens: Array) -> dict:
  """The backbone's own activations of `tokens` [Lp] in the direct parameter form."""
  variables = {"params": backbone}
  if spec.method == "prompt":
    emb = model.apply(variables, tokens[None], method=type(model).token_embeddings)
    return {"prompt": emb[0]}
  _, state = model.apply(variables, tokens[None], mutable=["intermediates"])
  inter = state["intermediates"]
  if spec.method == "hidden":
    return {"hidden": jnp.stack([x[0] for x in inter["layer_inputs"]])}
  # Each block's self-attention sows its (post-RoPE) token keys and values by name.
  blocks = sorted((k for k in inter if k != "layer_inputs"),
                  key=lambda n: int(n.rsplit("_", 1)[1]))
  attn = [inter[name]["attn"] for name in blocks]
  return {"keys": jnp.stack([a["keys"][0] for a in attn]),
          "values": jnp.stack([a["values"][0] for a in attn])}


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))
