"""The one error type of the methods package."""
from prefix_jax.errors import UserError


class MethodError(UserError, ValueError):
  """A method that does not apply to this config or backbone (the message names it)."""
