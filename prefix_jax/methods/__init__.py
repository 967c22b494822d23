"""Training methods beside the prefix family: full and top-k fine-tuning, BitFit, LoRA,
adapters, LLaMA-Adapter, each written once for every backbone (see `registry`).

The trainer calls `build_method` (before any compile) and `prepare`; `export_trained` writes
what a run trained and `trained_weights` gives `evaluate` exactly those weights.
"""
from prefix_jax.methods.errors import MethodError
from prefix_jax.methods.registry import ALL, PREFIX_FAMILY, Method, build_method, check_name
from prefix_jax.methods.run import (METHOD_FILE, PREFIX_FILE, Prepared, check_trainable,
                                    export_trained, load_trained, prepare, share_summary,
                                    trained_weights)

__all__ = ["ALL", "METHOD_FILE", "PREFIX_FAMILY", "PREFIX_FILE", "Method", "MethodError",
           "Prepared", "build_method", "check_name", "check_trainable", "export_trained", "load_trained",
           "prepare", "share_summary", "trained_weights"]
