"""Request bodies of the HTTP API (OpenAI's completions, plus the `beam_size` extension)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StreamOptions(BaseModel):
  """OpenAI's `stream_options`: `include_usage` adds a last chunk with the usage."""
  model_config = ConfigDict(strict=True, extra="ignore")
  include_usage: bool = False


class CompletionBody(BaseModel):
  """POST /v1/completions. `model` names a loaded prefix, or the backbone (no prefix). Only
  greedy search (temperature 0) and beam search (`beam_size` > 1) exist: a positive
  temperature is refused. Fields of OpenAI's API not listed here are ignored."""
  model_config = ConfigDict(strict=True, extra="ignore")
  model: str
  prompt: str | list[str]
  max_tokens: int = 16
  temperature: float = 0.0
  beam_size: int = Field(1, description="extension: beam width (1 = greedy)")
  stop: str | list[str] | None = None
  stream: bool = False
  stream_options: StreamOptions | None = None
  ignore_eos: bool = Field(False, description="extension (as vLLM): generate max_tokens tokens")


class PrefixBody(BaseModel):
  """POST /admin/prefixes: load the exported prefix file `path` under `name`."""
  model_config = ConfigDict(strict=True, extra="forbid")
  name: str
  path: str
