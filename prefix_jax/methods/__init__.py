"""Training methods beside the prefix family: full and top-k fine-tuning, BitFit, LoRA,
adapters, LLaMA-Adapter, each written once for every backbone (see `registry`).

The trainer calls `build_method` (before any compile); what it then does with a method
(`prepare`, `export_trained`, `trained_weights`) lives in `prefix_jax.train.method_run`, so
this package never imports the trainer.
"""
from prefix_jax.methods.errors import MethodError
from prefix_jax.methods.registry import ALL, PREFIX_FAMILY, Method, build_method, check_name

__all__ = ["ALL", "PREFIX_FAMILY", "Method", "MethodError", "build_method", "check_name"]
