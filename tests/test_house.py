"""House rules checked on the source: imports run one way, every module imports alone, the
package never imports the benchmarks or experiments, no function grows past 80 lines, and the
README stays one page."""
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "prefix_jax"
MAX_FUNCTION_LINES = 80
README_MAX_LINES = 260  # "a newcomer's page of at most ~250 lines"


def _modules() -> dict[str, Path]:
  out = {}
  for path in PKG.rglob("*.py"):
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    out[name] = path
  return out


def _imports(name: str, path: Path, known) -> set[str]:
  """Modules of the package that `name` imports anywhere (module level or inside functions)."""
  found = set()
  is_pkg = path.name == "__init__.py"
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
        base = ".".join(anchor + ([base] if base else []))
      subs = [f"{base}.{a.name}" for a in node.names]  # `from pkg import submodule`
      targets = subs + ([base] if not all(t in known for t in subs) else [])
    else:
      continue
    found.update(t for t in targets if t in known)
  found.discard(name)
  return found


def _graph(level) -> dict[str, set[str]]:
  mods = _modules()
  graph: dict[str, set[str]] = {}
  for name, path in mods.items():
    src = level(name)
    graph.setdefault(src, set()).update(
        level(t) for t in _imports(name, path, mods) if level(t) != src)
  return graph


def _cycle(graph) -> list[str] | None:
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state and (found := visit(nxt)):
        return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state and (found := visit(node)):
      return found
  return None


def _subpackage(name: str) -> str:
  """prefix_jax.models.llama -> prefix_jax.models; top-level modules stay themselves."""
  return ".".join(name.split(".")[:2])


def _whole(name: str) -> str:
  return name


@pytest.mark.parametrize("level", [_whole, _subpackage], ids=["modules", "subpackages"])
def test_no_import_cycle(level):
  assert _cycle(_graph(level)) is None, " -> ".join(_cycle(_graph(level)))


def test_cycle_finder_finds_a_cycle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_never_imports_benchmarks_or_experiments():
  for path in PKG.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      bad = [n for n in names if n.split(".")[0] in ("benchmarks", "experiments", "tests")]
      assert not bad, f"{path.relative_to(PKG.parent)}:{node.lineno} imports {bad}"


def test_no_function_longer_than_80_lines():
  long = []
  for path in PKG.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        n = node.end_lineno - node.lineno + 1
        if n > MAX_FUNCTION_LINES:
          long.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n} lines)")
  assert not long, long


def test_readme_stays_a_newcomers_page():
  n = len((PKG.parent / "README.md").read_text().splitlines())
  assert n <= README_MAX_LINES, f"README.md has {n} lines; history goes to docs/"


# One interpreter pre-imports the third-party libraries the package imports at module level, then
# forks one child per package module: the child imports that module alone (no other prefix_jax
# module loaded before it) and reports an error, or any benchmarks/experiments module it pulled in.
_IMPORT_EACH = textwrap.dedent("""
    import importlib, json, os, sys
    for lib in json.loads(sys.argv[1]):
      try:
        importlib.import_module(lib)
      except Exception:
        pass  # the child that needs it reports the failure
    assert not [m for m in sys.modules if m.split(".")[0] == "prefix_jax"]
    failures, running = {}, {}

    def reap():
      pid, status = os.wait()
      name, read = running.pop(pid)
      with os.fdopen(read, "rb") as f:  # a message shorter than the pipe's buffer
        msg = f.read().decode()
      if msg or status:
        failures[name] = msg or f"child exited with status {status}"

    for name in json.loads(sys.argv[2]):
      if len(running) >= os.cpu_count():
        reap()
      read, write = os.pipe()
      pid = os.fork()
      if pid == 0:
        os.close(read)
        try:
          importlib.import_module(name)
          bad = sorted(m for m in sys.modules if m.split(".")[0] in ("benchmarks", "experiments"))
          msg = f"imports {bad}" if bad else ""
        except BaseException as e:
          msg = f"{type(e).__name__}: {e}"
        os.write(write, msg.encode()[:4000])
        os._exit(0)
      os.close(write)
      running[pid] = (name, read)
    while running:
      reap()
    print(json.dumps(failures))
""")


def _third_party_imports() -> list[str]:
  """Top-level names of the libraries the package's modules import at module level."""
  libs = set()
  for path in PKG.rglob("*.py"):
    for node in ast.parse(path.read_text()).body:
      if isinstance(node, ast.Import):
        libs.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
        libs.add(node.module)
  return sorted(n for n in libs if n.split(".")[0] not in ("prefix_jax", "__future__"))


def import_each_alone(modules) -> dict[str, str]:
  """{module: error} for the package modules that fail to import alone in a fresh interpreter."""
  import json
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(PKG.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  proc = subprocess.run(
      [sys.executable, "-c", _IMPORT_EACH, json.dumps(_third_party_imports()),
       json.dumps(sorted(modules))], cwd=PKG.parent, env=env, capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_module_imports_alone():
  failures = import_each_alone(_modules())
  assert not failures, "\n".join(f"{name}: {msg}" for name, msg in sorted(failures.items()))
