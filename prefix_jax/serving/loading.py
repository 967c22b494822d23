"""What both commands share: `--prefix name=file` arguments and building the engine."""
from __future__ import annotations

from prefix_jax.models import build_model
from prefix_jax.serving.bank import PrefixBank
from prefix_jax.serving.engine import Engine, Limits
from prefix_jax.serving.errors import PrefixLoadError
from prefix_jax.train.backbone import load_backbone


def parse_prefix_args(items: list[str]) -> dict[str, str]:
  """['e2e=run/prefix.safetensors', ...] -> {'e2e': 'run/prefix.safetensors'}."""
  out = {}
  for item in items:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
      raise PrefixLoadError(f"--prefix {item!r}: expected NAME=FILE")
    if name in out:
      raise PrefixLoadError(f"--prefix {name}: given twice")
    out[name] = path
  return out


def build_engine(model_name: str, prefixes: dict[str, str], limits: Limits = Limits(), *,
                 seed: int = 0, eos_id: int | None = None) -> Engine:
  """Loads the backbone (a pretrained source or `tiny-<arch>`; served bare under
  `model_name`, as given), then every prefix file."""
  cfg, backbone, tokenizer = load_backbone(model_name, seed=seed)
  model = build_model(cfg)
  bank = PrefixBank(model, backbone, backbone_name=model_name)
  for name, path in prefixes.items():
    bank.add(name, path)
  return Engine(model, backbone, tokenizer, bank, limits, eos_id=eos_id)
