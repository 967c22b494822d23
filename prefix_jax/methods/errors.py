"""The one error type of the methods package."""


class MethodError(ValueError):
  """A method that does not apply to this config or backbone (the message names it)."""
