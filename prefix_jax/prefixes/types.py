"""The materialized prefix types live with the models that consume them (`models.prefix_types`);
re-exported here for the trainable side's users."""
from prefix_jax.models.prefix_types import FORMS, Prefix, PrefixShapeError, pad_and_stack

__all__ = ["FORMS", "Prefix", "PrefixShapeError", "pad_and_stack"]
