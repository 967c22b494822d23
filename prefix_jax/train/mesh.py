"""Device mesh and shardings: pmap semantics written with jit + NamedSharding.

One mesh axis, 'data'. The batch is split over it; the trainable state is replicated; the
frozen backbone is replicated, or (`fsdp=True`) each large weight is split along one axis
over the same devices so models larger than one device fit (XLA all-gathers per use).
Gradients of a global-mean loss are averaged across devices by the compiler.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from prefix_jax.errors import UserError


class MeshConfigError(UserError, ValueError):
  pass


def make_mesh(num_devices: int | None = None) -> Mesh:
  devices = jax.devices()
  n = len(devices) if not num_devices or num_devices < 0 else num_devices
  if n > len(devices):
    raise MeshConfigError(f"mesh asks for {n} devices but only {len(devices)} are visible")
  return Mesh(np.asarray(devices[:n]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise MeshConfigError(f"batch size {batch_size} is not divisible by the device count {n}")


def backbone_shardings(params, mesh: Mesh, fsdp: bool = False):
  """Per-leaf shardings: replicated, or FSDP (largest axis divisible by the device count)."""
  n = mesh.devices.size

  def one(x):
    if not fsdp or x.ndim < 2 or n == 1:
      return replicated(mesh)
    for axis in np.argsort(x.shape)[::-1]:
      if x.shape[axis] % n == 0:
        spec = [None] * x.ndim
        spec[axis] = "data"
        return NamedSharding(mesh, P(*spec))
    return replicated(mesh)

  return jax.tree_util.tree_map(one, params)


def put_batch(batch: dict, mesh: Mesh) -> dict:
  """Host-local numpy batch -> global arrays sharded over 'data' (multi-host aware)."""
  sharding = batch_sharding(mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
