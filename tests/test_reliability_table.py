"""The table of bad inputs (docs/errors.md): each case runs a command in-process, exits with its
code, prints exactly one line on stderr (`error: ...`, no traceback), and leaves every file of
the workdir it touches as it was (a hash of the tree before and after)."""
import hashlib
import json
import os
import sys
from pathlib import Path
from unittest import mock

import pytest
from absl import flags

from prefix_jax import evaluate as evaluate_cli
from prefix_jax import paths
from prefix_jax import main as main_cli
from prefix_jax.train.loop import train_and_evaluate
from run_tiny import tiny_config

ROOT = Path(__file__).resolve().parent.parent
E2E = str(ROOT / "configs" / "e2e.py")
TINY = f"--config={E2E}:model=tiny-llama"
DOCS = ROOT / "docs" / "errors.md"
TRAINED = "{trained}"  # placeholder for the shared trained workdir
NEW = "{new}"  # placeholder for a fresh workdir path (must stay absent, or empty)


def tree_hash(folder: Path) -> str:
  h = hashlib.sha256()
  for p in sorted(folder.rglob("*")) if folder.exists() else ():
    h.update(str(p.relative_to(folder)).encode())
    if p.is_file():
      h.update(p.read_bytes())
  return h.hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_dir):
  """A tiny run of 2 steps (checkpoints 1 and 2, prefix exported); no case may change it."""
  wd = tmp_path_factory.mktemp("trained") / "run"
  train_and_evaluate(tiny_config(E2E, **{"train.num_steps": 2, "train.checkpoint_every": 1}), wd)
  return wd


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """Bad files the cases point at."""
  d = tmp_path_factory.mktemp("files")
  (d / "pickle.bin").write_bytes(b"\x80\x04\x95" + b"\x00" * 20)
  (d / "empty_dir").mkdir()
  hf = d / "hf_bad_json"
  hf.mkdir()
  (hf / "config.json").write_text("{not json")
  (d / "garbage.safetensors").write_bytes(b"\x00" * 10)
  (d / "a_file").write_text("x")
  other = d / "other_run"  # a workdir of another run
  other.mkdir()
  (other / "run.json").write_text(json.dumps({"model": "tiny-gpt2", "prefix": None}))
  bad_cfg = d / "bad_config_run"
  bad_cfg.mkdir()
  (bad_cfg / "config.json").write_text("{\n oops")
  corrupt_run = d / "corrupt_run_json"
  corrupt_run.mkdir()
  (corrupt_run / "run.json").write_text("{oops")
  orphan = d / "orphan_checkpoints"
  (orphan / "checkpoints" / "3").mkdir(parents=True)
  for name, contents in DATA_FOLDERS.items():  # shared folders with a bad e2e data set
    e2e = d / name / "data" / "e2e"
    e2e.mkdir(parents=True)
    (d / name / "models").symlink_to(paths.shared_dir() / "models")
    for fname, text in contents.items():
      (e2e / fname).write_bytes(text)
  no_prefix = d / "no_prefix"
  no_prefix.mkdir()
  (no_prefix / "config.json").write_text(tiny_config(E2E).to_json_best_effort())
  return d


E2E_ROW = b'"name[A], eatType[pub]",A is a pub.\n'
DATA_FOLDERS = {
    "shared_bad_header": {"devset.csv": b"foo,bar\n1,2\n",
                          "testset_w_refs.csv": b"mr,ref\n" + E2E_ROW},
    "shared_all_rows_bad": {"devset.csv": b'mr,ref\n"name B, eatType[pub]",B.\n"name[C]",\n',
                            "testset_w_refs.csv": b"mr,ref\n" + E2E_ROW},
    "shared_no_test_file": {"devset.csv": b"mr,ref\n" + E2E_ROW * 16},
    "shared_tiny_train": {"devset.csv": b"mr,ref\n" + E2E_ROW * 3,
                          "testset_w_refs.csv": b"mr,ref\n" + E2E_ROW},
}


def data_env(folder):
  return {"PREFIX_JAX_SHARED": "{files}/" + folder, "PREFIX_JAX_DATA_DIR": "{tmp}/tfds",
          "PREFIX_JAX_OFFLINE": "1"}


# (id, module, args, exit code, text the one line must contain[, environment])
CASES = [
    # flags and config files (raised while absl parses flags)
    ("no-config", "main", [f"--workdir={NEW}"], 2, "--config"),
    ("no-workdir", "main", [TINY], 2, "--workdir"),
    ("config-file-missing", "main", ["--config=configs/nope.py", f"--workdir={NEW}"], 2,
     "config file not found: configs/nope.py"),
    ("config-file-not-python", "main", ["--config=README.md", f"--workdir={NEW}"], 2,
     "config file README.md, line"),
    ("config-arg-unknown-key", "main", [f"{TINY},bogus=1", f"--workdir={NEW}"], 2,
     "unknown config key 'bogus'"),
    ("config-arg-bad-method", "main", [f"{TINY},method=nope", f"--workdir={NEW}"], 2,
     "method 'nope' unknown"),
    ("config-arg-bad-int", "main", [f"{TINY},prefix_len=abc", f"--workdir={NEW}"], 2,
     "config key 'prefix_len'"),
    ("override-unknown-key", "main", [TINY, "--config.train.bogus=3", f"--workdir={NEW}"], 2,
     "unknown config key 'bogus' in --config.train.bogus=3"),
    ("override-bad-int", "main", [TINY, "--config.train.batch_size=abc", f"--workdir={NEW}"],
     2, "--config.train.batch_size=abc"),
    ("override-float-for-int", "main", [TINY, "--config.train.batch_size=1.5",
                                        f"--workdir={NEW}"], 2, "--config.train.batch_size=1.5"),
    ("override-scalar-for-dict", "main", [TINY, "--config.train=3", f"--workdir={NEW}"], 2,
     "is not a dict"),
    ("override-no-value", "main", [TINY, f"--workdir={NEW}", "--config.data"], 2,
     "Missing value for flag --config.data"),
    ("unknown-flag", "main", [TINY, "--bogus=1", f"--workdir={NEW}"], 2, "'bogus'"),
    # config values
    ("batch-size-zero", "main", [TINY, "--config.train.batch_size=0", f"--workdir={NEW}"], 2,
     "train.batch_size must be a positive int"),
    ("accum-not-divisor", "main", [TINY, "--config.train.batch_size=6",
                                   "--config.train.accum_steps=4", f"--workdir={NEW}"], 2,
     "not divisible by train.accum_steps"),
    ("num-steps-negative", "main", [TINY, "--config.train.num_steps=-1", f"--workdir={NEW}"], 2,
     "train.num_steps or train.num_epochs"),
    ("no-steps-no-epochs", "main", [TINY, "--config.train.num_epochs=0", f"--workdir={NEW}"], 2,
     "train.num_steps or train.num_epochs"),
    ("bucket-size-zero", "main", [TINY, "--config.data.bucket_size=0", f"--workdir={NEW}"], 2,
     "data.bucket_size must be > 0"),
    ("pack-length-negative", "main", [TINY, "--config.data.pack_length=-4",
                                      f"--workdir={NEW}"], 2, "data.pack_length must be"),
    ("pack-step-without-pack", "main", [TINY, "--config.data.pack_length_step=8",
                                        f"--workdir={NEW}"], 2, "needs data.pack_length > 0"),
    ("pack-with-infix", "main", [f"{TINY},method=infix", "--config.data.pack_length=64",
                                 f"--workdir={NEW}"], 2, "needs one example per row"),
    ("lr-zero", "main", [TINY, "--config.optim.learning_rate=0.0", f"--workdir={NEW}"], 2,
     "optim.learning_rate must be > 0"),
    ("lr-negative", "main", [TINY, "--config.optim.learning_rate=-1.0", f"--workdir={NEW}"], 2,
     "optim.learning_rate must be > 0"),
    ("metrics-unknown", "main", [f"{TINY},metrics=bleu+blue", f"--workdir={NEW}"], 2,
     "metrics: blue not scored for task 'e2e'"),
    ("dtype-unknown", "main", [TINY, "--config.dtype=float16", f"--workdir={NEW}"], 2,
     "dtype must be float32 or bfloat16"),
    ("remat-unknown", "main", [TINY, "--config.train.remat=some", f"--workdir={NEW}"], 2,
     "train.remat must be one of"),
    ("too-many-devices", "main", [TINY, "--config.train.num_devices=64", f"--workdir={NEW}"], 2,
     "64 devices"),
    ("prefix-longer-than-positions", "main", [f"{TINY},prefix_len=600", f"--workdir={NEW}"], 2,
     "prefix length 600 >= the model's 512 positions"),
    ("pack-longer-than-positions", "main", [TINY, "--config.data.pack_length=600",
                                            f"--workdir={NEW}"], 2, "max_positions 512"),
    ("optimizer-unknown", "main", [TINY, "--config.optim.name=nope", "--config.train.num_steps=1",
                                   f"--workdir={NEW}"], 2, "optim.name 'nope' unknown"),
    ("schedule-unknown", "main", [TINY, "--config.optim.schedule=nope",
                                  "--config.train.num_steps=1", f"--workdir={NEW}"], 2,
     "optim.schedule 'nope' unknown"),
    ("grad-clip-negative", "main", [TINY, "--config.optim.grad_clip=-1.0",
                                    "--config.train.num_steps=1", f"--workdir={NEW}"], 2,
     "optim.grad_clip must be >= 0"),
    ("task-unknown", "main", [TINY, "--config.task=nope", "--config.train.num_steps=1",
                              f"--workdir={NEW}"], 2, "unknown task 'nope'"),
    # data (a shared folder of bad files, prepared into a fresh TFDS folder)
    ("data-csv-bad-header", "main", [TINY, f"--workdir={NEW}"], 2,
     "devset.csv, line 1: expected a header with columns mr,ref", data_env("shared_bad_header")),
    ("data-all-rows-malformed", "main", [TINY, f"--workdir={NEW}"], 2,
     "shared_all_rows_bad/data/e2e/devset.csv: no examples for split 'validation': all 2 "
     "records are bad (empty_target: 1, malformed_mr: 1); first bad record devset.csv:2",
     data_env("shared_all_rows_bad")),
    ("data-test-file-missing", "main", [TINY, f"--workdir={NEW}"], 2,
     "testset_w_refs.csv not found", data_env("shared_no_test_file")),
    ("data-fewer-rows-than-a-batch", "main", [TINY, f"--workdir={NEW}"], 2,
     "3 examples cannot fill one global batch of 10", data_env("shared_tiny_train")),
    ("eval-test-file-missing", "evaluate", [f"--workdir={TRAINED}"], 2,
     "testset_w_refs.csv not found", data_env("shared_no_test_file")),
    # weights
    ("model-missing-path", "main", [TINY, "--config.model=/nonexistent/model",
                                    f"--workdir={NEW}"], 2, "/nonexistent/model: no such file"),
    ("model-pickle", "main", [TINY, "--config.model={files}/pickle.bin", f"--workdir={NEW}"],
     2, "PyTorch pickle refused"),
    ("model-empty-dir", "main", [TINY, "--config.model={files}/empty_dir", f"--workdir={NEW}"],
     2, "no config.json (HF)"),
    ("model-bad-hf-config", "main", [TINY, "--config.model={files}/hf_bad_json",
                                     f"--workdir={NEW}"], 2, "invalid JSON"),
    ("model-bare-safetensors", "main", [TINY, "--config.model={files}/garbage.safetensors",
                                        f"--workdir={NEW}"], 2, "a bare safetensors file"),
    # workdirs
    ("workdir-is-a-file", "main", [TINY, "--workdir={files}/a_file"], 2, "not writable"),
    ("workdir-under-a-file", "main", [TINY, "--workdir={files}/a_file/sub"], 2, "not writable"),
    ("workdir-of-another-prefix", "main", [f"{TINY},prefix_len=7", f"--workdir={TRAINED}"], 2,
     "different model or prefix"),
    ("workdir-of-another-model", "main", [TINY, "--workdir={files}/other_run"], 2,
     "different model or prefix"),
    ("workdir-corrupt-run-json", "main", [TINY, "--workdir={files}/corrupt_run_json"], 2,
     "run.json is corrupt"),
    ("workdir-orphan-checkpoints", "main", [TINY, "--workdir={files}/orphan_checkpoints"], 2,
     "holds checkpoints but no run.json"),
    # evaluate
    ("eval-no-workdir", "evaluate", [TINY], 2, "--workdir"),
    ("eval-no-config-anywhere", "evaluate", [f"--workdir={NEW}"], 2, "--config"),
    ("eval-corrupt-config-json", "evaluate", ["--workdir={files}/bad_config_run"], 2,
     "config.json, line 2: not valid JSON"),
    ("eval-override-unknown-key", "evaluate", [f"--workdir={TRAINED}", "--config.bogus=1"], 2,
     "unknown config key 'bogus'"),
    ("eval-override-bad-type", "evaluate", [f"--workdir={TRAINED}",
                                            "--config.decode.beam_size=x"], 2,
     "--config.decode.beam_size=x"),
    ("eval-prefix-missing", "evaluate", [f"--workdir={TRAINED}", "--prefix={files}/nope"], 2,
     "nope"),
    ("eval-prefix-garbage", "evaluate", [f"--workdir={TRAINED}",
                                         "--prefix={files}/garbage.safetensors"], 2,
     "not a readable safetensors prefix"),
    ("eval-no-prefix-in-workdir", "evaluate", ["--workdir={files}/no_prefix"], 2,
     "prefix.safetensors"),
    ("eval-unknown-split", "evaluate", [f"--workdir={TRAINED}", "--split=nope"], 2, "nope"),
    ("eval-unknown-task", "evaluate", [f"--workdir={TRAINED}", "--config.task=nope"], 2,
     "unknown task 'nope'"),
]


def test_the_table_has_fifty_cases_all_documented():
  assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)
  doc = DOCS.read_text()
  missing = [c[0] for c in CASES if f"`{c[0]}`" not in doc]
  assert not missing, f"cases not in {DOCS}: {missing}"


def run_cli(module, args: list[str]) -> int:
  """Runs `python -m prefix_jax.<module> ARGS` in this process; returns the exit code."""
  for name in list(flags.FLAGS):  # the commands' flags (and config overrides) of the last case
    if name in ("config", "workdir", "evaluate", "prefix", "split") or name.startswith("config."):
      delattr(flags.FLAGS, name)
  cli = {"main": main_cli, "evaluate": evaluate_cli}[module]
  argv = [f"prefix_jax.{module}", *args]
  try:
    with mock.patch.object(sys, "argv", argv):
      cli._main_with_flags()
  except SystemExit as e:
    return e.code if isinstance(e.code, int) else 1
  return 0


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_touches_nothing(case, files, tmp_path, capfd, request,
                                                      monkeypatch):
  _, module, args, code, text, *env = case
  new = tmp_path / "new_run"
  # Only the cases that read a trained run pay for training it (once per module).
  trained = request.getfixturevalue("trained") if any(TRAINED in a for a in args) else files
  fill = lambda a: a.replace(TRAINED, str(trained)).replace(NEW, str(new)).replace(
      "{files}", str(files)).replace("{tmp}", str(tmp_path))
  args = [fill(a) for a in args]
  for k, v in (env[0] if env else {}).items():
    monkeypatch.setenv(k, fill(v))
  before = {p: tree_hash(p) for p in (trained, files)}
  got = run_cli(module, args)
  err = capfd.readouterr().err
  lines = [x for x in err.splitlines() if x.strip()]
  assert got == code and len(lines) == 1, err
  assert lines[0].startswith("error: ") and text in lines[0], err
  if os.environ.get("PREFIX_JAX_ERRORS_DUMP"):  # regenerates the table of docs/errors.md
    with open(os.environ["PREFIX_JAX_ERRORS_DUMP"], "a") as f:
      f.write(json.dumps([case[0], module, case[2], got, lines[0]]) + "\n")
  assert {p: tree_hash(p) for p in (trained, files)} == before
  assert not new.exists() or not any(new.rglob("*")), sorted(new.rglob("*"))
