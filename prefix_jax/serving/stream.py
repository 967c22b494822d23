"""`stream: true`: a completion as server-sent events in OpenAI's format.

Each choice's text goes out in one chunk per generated token (its text delta), then a chunk with
its `finish_reason`; with `stream_options.include_usage` a last chunk holds the usage and no
choices; then `data: [DONE]`. The deltas of a choice concatenate to exactly the non-streamed
text. Decoding runs the whole sequence in one compiled loop, so the chunks follow the batch's
end rather than each token's.
"""
from __future__ import annotations

import json
from typing import Iterator


def text_pieces(tokenizer, tokens: list[int], text: str) -> list[str]:
  """The text each token adds, cut to `text` (the completion's final text, stop strings
  applied): one piece per token that adds any (a token ending inside a character waits for the
  next). The pieces join to `text`."""
  pieces, emitted = [], ""
  for k in range(1, len(tokens) + 1):
    upto = tokenizer.decode(tokens[:k])[:len(text)]
    if (upto == emitted or upto.endswith("\ufffd") or not upto.startswith(emitted)
        or not text.startswith(upto)):
      continue  # an incomplete UTF-8 sequence, or text the next tokens rewrite
    pieces.append(upto[len(emitted):])
    emitted = upto
  if emitted != text:
    pieces.append(text[len(emitted):])
  return pieces


def _event(data) -> str:
  return f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n"


def events(payload: dict, pieces: list[list[str]], include_usage: bool) -> Iterator[str]:
  """The events of a completion `payload` (as non-streamed) whose choice i is `pieces[i]`."""
  head = {k: payload[k] for k in ("id", "object", "created", "model")}
  for choice, texts in zip(payload["choices"], pieces):
    for text in texts:
      yield _event(dict(head, choices=[dict(choice, text=text, finish_reason=None)]))
    yield _event(dict(head, choices=[dict(choice, text="")]))
  if include_usage:
    yield _event(dict(head, choices=[], usage=payload["usage"]))
  yield _event("[DONE]")
