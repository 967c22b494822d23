"""TFDS builders (array_record) for the paper's datasets; importing registers them."""
from prefix_jax.data.builders.dart import PjDart
from prefix_jax.data.builders.e2e import PjE2e
from prefix_jax.data.builders.sst2 import PjSst2
from prefix_jax.data.builders.webnlg import PjWebnlg2017
from prefix_jax.data.builders.xsum import PjXsum

__all__ = ["PjDart", "PjE2e", "PjSst2", "PjWebnlg2017", "PjXsum"]
