"""The FastAPI app: OpenAI-compatible completions over a prefix bank, with dynamic batching.

`model` names a prefix, or the backbone (served bare). Routes: GET /health, GET /v1/models,
POST /v1/completions, GET /v1/stats (batches decoded: sizes, mixed-prefix count; requests in
flight), POST /admin/prefixes and DELETE /admin/prefixes/{name}. With an API key every route
needs `Authorization: Bearer KEY`; without one the admin routes are off.
Errors have OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from prefix_jax.serving.batcher import Batcher
from prefix_jax.serving.engine import Engine
from prefix_jax.serving.engine import Request as Job
from prefix_jax.serving.errors import PrefixLoadError, ServingError
from prefix_jax.serving.guards import Arrivals, Guards, error
from prefix_jax.serving.schemas import CompletionBody, PrefixBody
from prefix_jax.serving.stream import events, text_pieces


@dataclasses.dataclass(frozen=True)
class Settings:
  api_key: str | None = None
  max_body_bytes: int = 1 << 16
  window_s: float = 0.005
  max_wait_s: float = 0.05
  max_queue: int = 1024


def _validation_error(_, exc: RequestValidationError) -> JSONResponse:
  first = exc.errors()[0]
  if first["type"] == "json_invalid":
    return error(400, f"malformed JSON body: {first.get('ctx', {}).get('error', first['msg'])}")
  field = ".".join(str(p) for p in first["loc"][1:]) or "body"
  return error(422, f"field '{field}': {first['msg']}", field)


def _install_guards(app: FastAPI, settings: Settings, arrivals: Arrivals) -> None:
  """Body size limit, bearer key, arrivals (`guards.Guards`), and the error shapes."""
  app.add_middleware(Guards, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes,
                     arrivals=arrivals)
  app.add_exception_handler(RequestValidationError, _validation_error)
  app.add_exception_handler(ServingError, lambda _, e: error(e.status, str(e), e.param))
  app.add_exception_handler(
      HTTPException, lambda _, e: error(e.status_code, str(e.detail)))


def _completion_json(body: CompletionBody, jobs: list[Job], results: list) -> dict:
  prompt_tokens = sum(len(j.ids) for j in jobs)
  completion_tokens = sum(len(c.tokens) for c in results)
  return {
      "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
      "model": body.model,
      "choices": [{"index": i, "text": c.text, "finish_reason": c.finish_reason,
                   "logprobs": None} for i, c in enumerate(results)],
      "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens},
      # Extension: the batch each choice was decoded in (size, distinct prefixes).
      "batches": [{"size": c.batch_size, "prefixes": c.batch_prefixes} for c in results],
  }


def _jobs(engine: Engine, body: CompletionBody) -> list[Job]:
  """The checked jobs of one request (one per prompt); raises ServingError naming the field."""
  if body.temperature != 0:
    raise ServingError(f"temperature {body.temperature} asks for sampling, which this server "
                       "does not do: use 0 (greedy) or beam_size", param="temperature")
  prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
  if not 1 <= len(prompts) <= engine.limits.max_batch:
    raise ServingError(f"prompt must hold 1 to {engine.limits.max_batch} strings, got "
                       f"{len(prompts)}", param="prompt")
  stop = () if body.stop is None else (body.stop,) if isinstance(body.stop, str) else body.stop
  jobs = [Job(prefix=body.model, ids=engine.encode(p), max_tokens=body.max_tokens,
              num_beams=body.beam_size, stop=tuple(stop), ignore_eos=body.ignore_eos)
          for p in prompts]
  for job in jobs:
    engine.check(job)
  return jobs


def create_app(engine: Engine, settings: Settings = Settings()) -> FastAPI:
  arrivals = Arrivals()
  batcher = Batcher(engine, window_s=settings.window_s, max_wait_s=settings.max_wait_s,
                    max_queue=settings.max_queue, arriving=lambda: arrivals.count)

  @contextlib.asynccontextmanager
  async def lifespan(_):
    batcher.start()
    yield
    batcher.stop()  # uvicorn has finished the in-flight requests by now

  app = FastAPI(title="prefix_jax", lifespan=lifespan)
  app.state.batcher = batcher
  _install_guards(app, settings, arrivals)

  def admin():
    if settings.api_key is None:
      raise ServingError("admin routes need the server started with --api-key", status=403)

  @app.get("/health")
  async def health():
    return {"status": "ok", "prefixes": len(engine.bank.names())}

  @app.get("/v1/models")
  async def models():
    bare = engine.bank.backbone_name
    return {"object": "list", "data": [
        {"id": n, "object": "model", "owned_by": "prefix_jax",
         "parent": None if n == bare else bare} for n in engine.bank.models()]}

  @app.get("/v1/stats")
  async def stats():
    return dict(batcher.stats.as_dict(), in_flight=batcher.in_flight)

  @app.post("/v1/completions")
  async def completions(body: CompletionBody, request: Request):
    jobs = _jobs(engine, body)
    arrivals.leave(request.scope)  # queued now: the batcher sees these requests themselves
    results = await asyncio.gather(*(batcher.submit(j) for j in jobs))
    payload = _completion_json(body, jobs, results)
    if body.stream:
      pieces = [text_pieces(engine.tokenizer, c.tokens, c.text) for c in results]
      usage = body.stream_options is not None and body.stream_options.include_usage
      return StreamingResponse(events(payload, pieces, usage), media_type="text/event-stream")
    return payload

  @app.post("/admin/prefixes", dependencies=[Depends(admin)])
  def add_prefix(body: PrefixBody):
    try:
      slots = engine.bank.add(body.name, body.path)
    except PrefixLoadError as e:
      raise ServingError(str(e), param="path") from None
    return {"name": body.name, "slots": slots, "prefixes": engine.bank.names()}

  @app.delete("/admin/prefixes/{name}", dependencies=[Depends(admin)])
  def remove_prefix(name: str):
    if name == engine.bank.backbone_name:
      raise ServingError(f"'{name}' is the backbone, not a prefix", param="name")
    if not engine.bank.remove(name):
      raise ServingError(f"unknown prefix '{name}'", status=404, param="name")
    return {"removed": name, "prefixes": engine.bank.names()}

  return app
