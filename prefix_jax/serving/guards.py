"""What every request passes before FastAPI parses it: the body size limit, the bearer key, and
the count of completion requests received but not queued yet (the batcher waits for those).

A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` runs each request through extra
tasks and memory streams, a cost paid on every request of a busy server.
"""
from __future__ import annotations

import secrets

from fastapi.responses import JSONResponse

COMPLETIONS = "/v1/completions"


def error(status: int, message: str, param: str | None = None) -> JSONResponse:
  """OpenAI's error shape."""
  kind = "invalid_request_error" if status < 500 else "server_error"
  return JSONResponse({"error": {"message": message, "type": kind, "param": param,
                                 "code": status}}, status_code=status)


class Arrivals:
  """Completion requests received and not yet queued (touched on the event loop only; the
  batcher's thread reads `count`)."""

  def __init__(self):
    self.count = 0

  def enter(self, scope: dict) -> None:
    self.count += 1
    scope.setdefault("state", {})["arrival"] = True

  def leave(self, scope: dict) -> None:
    """Once per request: when it is queued, or answered without being queued."""
    state = scope.get("state", {})
    if state.pop("arrival", False):
      self.count -= 1


class Guards:
  """ASGI middleware (see the module docstring)."""

  def __init__(self, app, *, api_key: str | None, max_body_bytes: int, arrivals: Arrivals):
    self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes
    self.arrivals = arrivals

  def refusal(self, scope: dict) -> JSONResponse | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    if scope["method"] in ("POST", "PUT", "PATCH"):
      length = headers.get("content-length")
      if length is None:
        return error(411, "a Content-Length header is required")
      if not length.isdigit() or int(length) > self.max_body_bytes:
        return error(413, f"request body of {length} bytes exceeds the limit of "
                          f"{self.max_body_bytes}")
    if self.api_key is not None:
      given = headers.get("authorization", "")
      if not secrets.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
        return error(401, "missing or wrong API key (Authorization: Bearer KEY)")
    return None

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    refused = self.refusal(scope)
    if refused is not None:
      return await refused(scope, receive, send)
    if scope["path"] != COMPLETIONS or scope["method"] != "POST":
      return await self.app(scope, receive, send)
    self.arrivals.enter(scope)
    try:
      await self.app(scope, receive, send)
    finally:
      self.arrivals.leave(scope)
