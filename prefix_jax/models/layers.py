"""Small layers shared by the backbones."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class RMSNorm(nn.Module):
  """x * rsqrt(mean(x^2) + eps) * scale, computed in float32 (as HF LLaMA)."""
  eps: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (normed * scale).astype(self.dtype)


ACTIVATIONS = {
    "silu": jax.nn.silu,
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),   # GPT-2's tanh approximation
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),      # BERT / BART
    "relu": jax.nn.relu,
}


def dense(features: int, name: str, dtype, use_bias: bool = False, std: float = 0.02):
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, name=name,
                  kernel_init=nn.initializers.normal(std))
