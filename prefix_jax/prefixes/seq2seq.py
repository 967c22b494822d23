"""`Seq2SeqPrefix` lives with the models that consume it (`models.seq2seq_prefix`); re-exported
here for the trainable side's users."""
from prefix_jax.models.seq2seq_prefix import ALLOWED_FORMS, Seq2SeqPrefix

__all__ = ["ALLOWED_FORMS", "Seq2SeqPrefix"]
