"""The classification head of an encoder run (P-tuning v2): added when the checkpoint has none,
trained with the prefix, exported beside it (`head.safetensors`) and read back to evaluate."""
from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file, save_file

from prefix_jax.errors import UserError
from prefix_jax.models.bert import HEAD_PARAMS, init_head
from prefix_jax.train.data import label_words
from prefix_jax.train.loss import model_kind

HEAD_FILE = "head.safetensors"


class HeadFileError(UserError, ValueError):
  """A head file that is missing or does not fit the backbone."""


def with_head(cfg, backbone: dict, num_labels: int, seed: int):
  """(cfg, backbone) with a classifier of `num_labels` outputs: a fresh one (normal(0.02)
  kernel, zero bias) unless the checkpoint already has one of that size."""
  if cfg.num_labels == num_labels and "classifier" in backbone:
    return cfg, backbone
  cfg = cfg.replace(num_labels=num_labels)
  head = jax.tree_util.tree_map(np.asarray, init_head(cfg, jax.random.PRNGKey(seed)))
  return cfg, {**backbone, **head}


def task_backbone(config, cfg, backbone: dict):
  """(cfg, backbone) as the run trains it: an encoder gets a head over the task's labels."""
  if model_kind(cfg) != "encoder":
    return cfg, backbone
  return with_head(cfg, backbone, len(label_words(config)), config.seed)


def export_trained_head(workdir, cfg, trained: dict) -> Path | None:
  """Exports an encoder run's trained head (`trained`: the trained backbone leaves, flat
  `{'classifier/kernel': x, ...}`); other trained leaves (fine-tuning's) belong to the
  method's own export, not here."""
  head = {k: v for k, v in trained.items() if k.split("/")[0] in HEAD_PARAMS}
  if model_kind(cfg) != "encoder" or not head:
    return None
  return export_head(workdir, head)


def head_pattern() -> str:
  """The `train.trainable_pattern` that trains the head (with the prefix)."""
  return "^(" + "|".join(HEAD_PARAMS) + ")/"


def export_head(workdir, trained: dict) -> Path:
  """Writes the trained head leaves (`{'classifier/kernel': x, ...}`) atomically."""
  path = Path(workdir) / HEAD_FILE
  tmp = path.with_name(path.name + ".tmp")
  save_file({k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in trained.items()},
            str(tmp))
  os.replace(tmp, path)
  return path


def load_head(workdir, backbone: dict) -> dict:
  """The backbone with the head leaves of `workdir/head.safetensors` in place."""
  path = Path(workdir) / HEAD_FILE
  if not path.is_file():
    raise HeadFileError(f"{path}: no trained classification head (train the run first)")
  flat = traverse_util.flatten_dict(backbone, sep="/")
  for key, value in load_file(str(path)).items():
    if key not in flat or flat[key].shape != value.shape:
      raise HeadFileError(f"{path}: head tensor {key} {value.shape} does not fit the backbone")
    flat[key] = value
  return traverse_util.unflatten_dict(flat, sep="/")
