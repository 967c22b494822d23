"""Serving many tasks on one frozen backbone: a bank of prefixes, mixed-prefix batches, the
OpenAI-compatible HTTP API (`prefix_jax.serve`) and the offline batch CLI
(`prefix_jax.generate`)."""
from prefix_jax.serving.bank import BankSnapshot, PrefixBank
from prefix_jax.serving.engine import Completion, Engine, Limits, Request
from prefix_jax.serving.errors import PrefixLoadError, ServingError

__all__ = ["BankSnapshot", "Completion", "Engine", "Limits", "PrefixBank", "PrefixLoadError",
           "Request", "ServingError"]
