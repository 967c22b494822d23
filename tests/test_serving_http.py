"""The HTTP server, driven by a real HTTP client over 127.0.0.1: concurrent mixed-prefix
requests answer exactly what each request decoded alone gives; bad input gets its status and
a message naming the problem, and the server keeps serving; SIGTERM finishes in-flight
requests and exits 0."""
import asyncio
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from serving_util import SOURCES, decode_alone, export_prefixes, write_tiny_llama

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shared_dir):
  return write_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def files(tmp_path_factory, model_dir):
  return export_prefixes(tmp_path_factory.mktemp("prefixes"), 8, model_dir, lengths=(3, 6))


@pytest.fixture(scope="module")
def server(model_dir, files):
  """(process, base url) of `python -m prefix_jax.serve` on a free loopback port."""
  args = [sys.executable, "-m", "prefix_jax.serve", "--model", model_dir, "--port", "0",
          "--api-key", KEY, "--max-batch", "16", "--batch-window-ms", "100",
          "--batch-max-wait-ms", "300", "--max-tokens",
          "32", "--max-body-bytes", "4096"]
  for name, path in files.items():
    args += ["--prefix", f"{name}={path}"]
  proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  watchdog = threading.Timer(180, proc.kill)  # a server that never starts fails the test
  watchdog.start()
  line = proc.stdout.readline()
  watchdog.cancel()
  assert line.startswith("serving 8 prefixes on http://127.0.0.1:"), line + proc.stderr.read()
  yield proc, line.split()[-1]
  if proc.poll() is None:
    proc.kill()
  proc.wait(timeout=30)


def _body(i: int, **extra) -> dict:
  return {"model": f"task{i % 8}", "prompt": SOURCES[i // 8 % 4], "max_tokens": 6, **extra}


async def _post_all(url: str, bodies: list[dict]) -> list[httpx.Response]:
  async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120,
                               limits=httpx.Limits(max_connections=len(bodies))) as client:
    return await asyncio.gather(*(client.post("/v1/completions", json=b) for b in bodies))


def test_64_concurrent_requests_over_8_prefixes_equal_decoding_alone(server, files, model_dir):
  _, url = server
  bodies = [_body(i) for i in range(64)]
  responses = asyncio.run(_post_all(url, bodies))
  assert [r.status_code for r in responses] == [200] * 64, responses[0].text
  texts = set()
  for body, r in zip(bodies, responses):
    choice = r.json()["choices"][0]
    text, n = decode_alone(model_dir, files[body["model"]], body["prompt"], 6)
    assert (choice["text"], r.json()["usage"]["completion_tokens"]) == (text, n), body
    texts.add(text)
  assert len(texts) >= 16  # prefixes and sources both change the answer
  stats = httpx.get(f"{url}/v1/stats", headers=AUTH).json()
  assert stats["requests"] >= 64 and stats["mixed_batches"] >= 1, stats
  assert max(int(k) for k in stats["batch_sizes"]) > 1, stats
  assert any(r.json()["batches"][0]["prefixes"] > 1 for r in responses)


BAD = [  # (body or raw bytes, headers, status, message)
    (_body(0, model="nope"), AUTH, 404, "unknown prefix 'nope' (loaded: task0, task1"),
    (_body(0, max_tokens=33), AUTH, 400, "max_tokens must be in [1, 32], got 33"),
    (_body(0, max_tokens="many"), AUTH, 422, "field 'max_tokens': Input should be a valid integer"),
    ({"model": "task0"}, AUTH, 422, "field 'prompt': Field required"),
    (b'{"model": "task0", "prompt": ', AUTH, 400, "malformed JSON body"),
    (_body(0, temperature=0.7), AUTH, 400, "temperature 0.7 asks for sampling"),
    (_body(0, prompt="a " * 240, max_tokens=30), AUTH, 400,
     "prompt 242 tokens + prefix 6 slots + max_tokens 30 = 278 exceeds the model's 256 positions"),
    (_body(0, prompt="a" * 5000), AUTH, 413, "exceeds the limit of 4096"),
    (_body(0), {}, 401, "missing or wrong API key"),
    (_body(0), {"Authorization": "Bearer wrong"}, 401, "missing or wrong API key"),
]


@pytest.mark.parametrize("body, headers, status, message", BAD)
def test_bad_requests_get_status_and_message(server, body, headers, status, message):
  _, url = server
  content = body if isinstance(body, bytes) else json.dumps(body).encode()
  r = httpx.post(f"{url}/v1/completions", content=content, timeout=60,
                 headers={**headers, "Content-Type": "application/json"})
  assert r.status_code == status, r.text
  assert message in r.json()["error"]["message"], r.text


def test_bad_requests_do_not_fail_the_batch_they_would_join(server, files, model_dir):
  _, url = server
  bodies = [_body(i) if i % 2 else _body(i, model="nope") for i in range(8)]
  responses = asyncio.run(_post_all(url, bodies))
  assert [r.status_code for r in responses] == [404, 200] * 4
  for body, r in zip(bodies[1::2], responses[1::2]):
    text, _ = decode_alone(model_dir, files[body["model"]], body["prompt"], 6)
    assert r.json()["choices"][0]["text"] == text


def test_models_health_and_admin_routes(server, model_dir, tmp_path):
  _, url = server
  with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
    assert client.get("/health").json() == {"status": "ok", "prefixes": 8}
    models = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in models] == [model_dir] + [f"task{i}" for i in range(8)]
    assert [m["parent"] for m in models] == [None] + [model_dir] * 8
    r = client.post("/v1/completions", json=_body(1, model=model_dir))  # the bare backbone
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == decode_alone(
        model_dir, None, SOURCES[0], 6)[0]
    other = export_prefixes(tmp_path, 1, "tiny-gpt2")["task0"]
    r = client.post("/admin/prefixes", json={"name": "gpt2", "path": other})
    assert r.status_code == 400 and "prefix was trained for backbone" in r.text
    (tmp_path / "ours").mkdir()
    extra = export_prefixes(tmp_path / "ours", 1, model_dir, lengths=(2,))["task0"]
    assert httpx.post(f"{url}/admin/prefixes", json={"name": "new", "path": extra},
                      timeout=60).status_code == 401
    assert client.post("/admin/prefixes", json={"name": "new", "path": extra}).status_code == 200
    r = client.post("/v1/completions", json=_body(0, model="new"))
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == decode_alone(
        model_dir, extra, SOURCES[0], 6)[0]
    assert client.delete("/admin/prefixes/new").status_code == 200
    assert client.post("/v1/completions", json=_body(0, model="new")).status_code == 404
    assert client.delete("/admin/prefixes/new").status_code == 404


@pytest.mark.parametrize("extra", [{}, {"stop": ["e", "a"]}], ids=["plain", "stop-strings"])
def test_stream_concatenates_to_the_answer(server, extra):
  """Server-sent events as OpenAI streams them, read as they come: one chunk per token of each
  choice, a finish chunk per choice, the usage chunk, `[DONE]`."""
  _, url = server
  body = _body(3, prompt=[SOURCES[0], SOURCES[2]], **extra)
  plain = httpx.post(f"{url}/v1/completions", json=body, headers=AUTH, timeout=60).json()
  with httpx.stream("POST", f"{url}/v1/completions", headers=AUTH, timeout=60, json=dict(
      body, stream=True, stream_options={"include_usage": True})) as r:
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    lines = list(r.iter_lines())
  assert all(line.startswith("data: ") for line in lines if line), lines
  events = [line[len("data: "):] for line in lines if line]
  assert events[-1] == "[DONE]"
  chunks = [json.loads(e) for e in events[:-1]]
  assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
  for want in plain["choices"]:
    mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == want["index"]]
    assert "".join(c["text"] for c in mine) == want["text"]
    assert [c["finish_reason"] for c in mine] == [None] * (len(mine) - 1) + [
        want["finish_reason"]]
    assert extra or len(mine) > 2  # token by token, not the whole text at once
  assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["object"] == (
      "text_completion")


def test_sigterm_finishes_in_flight_requests_and_exits_0(server):
  proc, url = server
  done = {}

  def post(i):
    # Beam search of a new width: a shape not compiled yet, so decoding takes a while.
    r = httpx.post(f"{url}/v1/completions", json=_body(i, beam_size=4, max_tokens=20),
                   headers=AUTH, timeout=120)
    done[i] = (r.status_code, time.monotonic())

  threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
  for t in threads:
    t.start()
  for _ in range(600):  # until all four wait in the server (bounded: 60 s)
    if httpx.get(f"{url}/v1/stats", headers=AUTH).json()["in_flight"] == 4 or not any(
        t.is_alive() for t in threads):
      break
    time.sleep(0.1)
  sent = time.monotonic()
  proc.send_signal(signal.SIGTERM)
  for t in threads:
    t.join(timeout=120)
  assert proc.wait(timeout=60) == 0, proc.stderr.read()
  assert sorted(done) == [0, 1, 2, 3]
  assert all(status == 200 and at > sent for status, at in done.values()), (done, sent)
