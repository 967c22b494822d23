"""Prefix methods: the trainable side (spec, params, init, MLP reparameterization, banks)."""
from prefix_jax.prefixes.params import (activations_of, check_params, count_params,
                                        direct_params, fold_reparam, init_prefix, materialize)
from prefix_jax.prefixes.spec import PrefixSpec
from prefix_jax.models.prefix_types import Prefix, PrefixShapeError, pad_and_stack

__all__ = ["Prefix", "PrefixShapeError", "PrefixSpec", "activations_of", "check_params",
           "count_params", "direct_params", "fold_reparam", "init_prefix", "materialize",
           "pad_and_stack"]
