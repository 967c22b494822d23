"""`python -m prefix_jax.generate`: a JSON-lines file of requests over several prefixes and the
bare backbone (greedy and beam, mixed in batches) gives what each request decoded alone gives;
a bad line or a prefix of another backbone stops it with one line and exit 2, before anything
is written."""
import json
import subprocess
import sys

import pytest

from serving_util import SOURCES, decode_alone, export_prefixes, write_tiny_llama


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_dir):
  root = tmp_path_factory.mktemp("generate")
  (root / "model").mkdir()
  model = write_tiny_llama(root / "model")
  return root, model, export_prefixes(root, 3, model)  # kv, hidden: tests/test_serving_engine


def _run(root, model, files, lines):
  (root / "req.jsonl").write_text("".join(json.dumps(l) + "\n" if isinstance(l, dict) else l
                                          for l in lines))
  args = [sys.executable, "-m", "prefix_jax.generate", "--model", model, "--input",
          str(root / "req.jsonl"), "--output", str(root / "out.jsonl"), "--batch-size", "4"]
  for name, path in files.items():
    args += ["--prefix", f"{name}={path}"]
  return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_mixed_requests_equal_decoding_alone(setup):
  root, model, files = setup
  # One greedy batch (batch size 4) over three prefixes and the bare backbone (named as
  # --model), one beam batch: two compiled shapes.
  lines = [{"id": f"r{i}", "prefix": f"task{i}" if i < 3 else model, "source": SOURCES[i % 2],
            "max_tokens": 5} for i in range(4)]
  lines += [{"prefix": "task2", "source": SOURCES[2], "max_tokens": 4, "beam_size": 2},
            {"prefix": "task0", "source": SOURCES[2], "max_tokens": 4, "beam_size": 2}]
  proc = _run(root, model, files, lines)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "6 requests" in proc.stdout and "tokens/s" in proc.stdout
  out = [json.loads(l) for l in (root / "out.jsonl").read_text().splitlines()]
  assert [o["id"] for o in out] == [f"r{i}" for i in range(4)] + ["4", "5"]
  for line, o in zip(lines, out):
    text, n = decode_alone(model, files.get(line["prefix"]), line["source"], line["max_tokens"],
                           beams=line.get("beam_size", 1))
    assert (o["text"], o["tokens"], o["prefix"]) == (text, n, line["prefix"]), line


@pytest.mark.parametrize("line, message", [
    ({"prefix": "nope", "source": "a"}, "req.jsonl:2: unknown prefix 'nope' (loaded: task0"),
    ({"prefix": "task0", "source": 3}, "req.jsonl:2: field 'source' must be a string"),
    ("{not json\n", "req.jsonl:2: Expecting property name"),
])
def test_bad_line_stops_with_its_number(setup, line, message):
  root, model, files = setup
  (root / "out.jsonl").unlink(missing_ok=True)
  proc = _run(root, model, files, [{"prefix": "task0", "source": "a b"}, line])
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
  assert len(proc.stderr.strip().splitlines()) == 1 and not (root / "out.jsonl").exists()


def test_prefix_of_another_backbone_is_refused(setup, tmp_path):
  root, model, files = setup
  other = export_prefixes(tmp_path, 1, "tiny-gpt2")
  proc = _run(root, model, {"task0": other["task0"]}, [{"prefix": "task0", "source": "a"}])
  assert proc.returncode == 2 and "prefix was trained for backbone" in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
