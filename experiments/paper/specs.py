"""The paper's tables and figures as data: rows (each a method's config arguments), columns
(task, metric, the factor that puts our score on the paper's scale), and for figures the x key
with its values per scale. Cells are built by `experiments.paper.cells`; published numbers are
in `experiments.paper.published`.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Column:
  label: str
  task: str            # configs/<task>.py unless the scale maps it (SCALES[..].config_files)
  metric: str          # key of scores.json
  factor: float = 1.0  # ours x factor = the paper's scale (e.g. ROUGE fraction -> percent)
  args: str = ""       # config arguments of this column's cells (e.g. a split scheme)


@dataclasses.dataclass(frozen=True)
class Row:
  label: str
  args: str            # config arguments, e.g. "method=adapter,adapter_share=0.03"


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str
  title: str
  rows: tuple[Row, ...]
  columns: tuple[Column, ...]
  kind: str = "table"                  # 'table' | 'figure'
  x_key: str | None = None             # figures: the swept key (None: rows are the x axis)
  x_values: dict | None = None         # figures: scale -> values of x_key
  seeded: bool = False                 # figures: every point over SCALES[..].seeds
  lowdata: bool = False                # train on SCALES[..].lowdata examples
  models: dict | None = None           # scale -> model, where this table needs another one
  note: str = ""


def _e2e(*metrics) -> tuple[Column, ...]:
  labels = {"bleu": ("BLEU", 1.0), "nist": ("NIST", 1.0), "meteor": ("MET", 100.0),
            "rouge_l": ("R-L", 100.0), "cider": ("CIDEr", 1.0)}
  return tuple(Column(f"E2E {labels[m][0]}", "e2e", m, labels[m][1]) for m in metrics)


E2E5 = _e2e("bleu", "nist", "meteor", "rouge_l", "cider")
WEBNLG_BLEU = tuple(Column(f"WebNLG BLEU {s}", "webnlg", f"bleu_{k}")
                    for s, k in (("S", "seen"), ("U", "unseen"), ("A", "all")))
DART_BLEU = (Column("DART BLEU", "dart", "bleu"),)
XSUM_ROUGE = tuple(Column(label, "xsum", m, 100.0)
                   for label, m in (("R-1", "rouge_1"), ("R-2", "rouge_2"), ("R-L", "rouge_l")))


def _xsum_split(scheme: str, title: str) -> tuple[Column, ...]:
  return tuple(dataclasses.replace(c, label=f"{title} {c.label}",
                                   args=f"data.split_scheme={scheme}") for c in XSUM_ROUGE)


FT, PREFIX = Row("FT", "method=finetune"), Row("Prefix", "method=prefix")

SPECS = {s.name: s for s in (
    Spec("table1", "Table 1: table-to-text (E2E, WebNLG, DART)",
         rows=(FT, Row("FT-top2", "method=finetune_top2"),
               Row("Adapter 3%", "method=adapter,adapter_share=0.03"),
               Row("Adapter 0.1%", "method=adapter,adapter_share=0.001"),
               Row("LoRA", "method=lora"), Row("Prefix 0.1%", "method=prefix")),
         columns=E2E5 + WEBNLG_BLEU + DART_BLEU),
    # Prefix lengths for about 2% / 0.1% of BART-large's parameters (36 attention sublayers x
    # 2 x 1024 per slot): 100 and 5; the table reports the measured share.
    Spec("table2", "Table 2: summarization (XSUM)",
         rows=(FT, Row("Prefix 2%", "method=prefix,prefix_len=100"),
               Row("Prefix 0.1%", "method=prefix,prefix_len=5")),
         columns=XSUM_ROUGE),
    Spec("table3", "Table 3: extrapolation to unseen topics / categories",
         rows=(FT, PREFIX),
         columns=(_xsum_split("news_to_sports", "news-to-sports")
                  + _xsum_split("within_news", "within-news")
                  + (Column("WebNLG unseen BLEU", "webnlg", "bleu_unseen",
                            args="data.split_scheme=seen_to_unseen"),))),
    Spec("table5", "Table 5: embedding-only and infix ablations (E2E)",
         rows=tuple(Row(f"EMB-{k}", f"method=prompt,prefix_len={k}") for k in (1, 10, 20))
         + tuple(Row(f"INFIX-{k}", f"method=infix,prefix_len={k}") for k in (1, 10, 20))
         + (Row("PREFIX", "method=prefix,prefix_len=10"),),
         columns=_e2e("bleu", "nist", "meteor", "rouge_l", "cider")),
    Spec("figure3", "Figure 3: low-data E2E (training examples vs score)", kind="figure",
         rows=(PREFIX, FT), columns=_e2e("bleu", "rouge_l"), x_key="n",
         x_values={"tiny": (8, 16), "mini": (50, 100, 200, 500), "paper": (50, 100, 200, 500)},
         seeded=True, note="the paper plots these points without tabulating them"),
    Spec("figure4", "Figure 4: prefix length (E2E)", kind="figure",
         rows=(PREFIX,), columns=_e2e("bleu", "rouge_l"), x_key="prefix_len",
         x_values={"tiny": (1, 5), "mini": (1, 5, 10, 20, 40), "paper": (1, 5, 10, 20, 40)},
         note="the paper plots these points without tabulating them"),
    Spec("figure5", "Figure 5: prefix initialization in low data (E2E)", kind="figure",
         rows=(Row("random", "method=prefix,reparam=none,init=random"),)
         + tuple(Row(w, f"method=prefix,reparam=none,init=words,prefix.init_text={w}")
                 for w in ("table-to-text:", "summarize", "elephant", "banana", "active")),
         columns=_e2e("bleu"), x_key=None, seeded=True, lowdata=True,
         note="low data: SCALES[..].lowdata examples; the paper plots without tabulating"),
    Spec("methods", "Beyond the paper: prefix vs prompt tuning vs P-tuning v2 vs LoRA vs "
         "LLaMA-Adapter (one LLaMA-family backbone)",
         rows=(Row("Prefix", "method=prefix"), Row("Prompt tuning", "method=prompt"),
               Row("P-tuning v2", "method=ptuning2"), Row("LoRA", "method=lora"),
               Row("LLaMA-Adapter", "method=llama_adapter")),
         columns=_e2e("bleu", "rouge_l") + WEBNLG_BLEU[2:] + DART_BLEU,
         models={"tiny": "tiny-llama", "mini": "smollm2-135m", "paper": "smollm2-135m"},
         note="no published numbers: the paper has no such table"),
    Spec("sst2", "Beyond the paper: SST-2 sentiment on an encoder (classification head)",
         rows=(Row("P-tuning v2", "method=ptuning2"), Row("FT", "method=finetune"),
               Row("Prompt tuning", "method=prompt")),
         columns=(Column("SST-2 acc", "sst2", "accuracy", 100.0),),
         models={"tiny": "tiny-bert", "mini": "minilm-l6", "paper": "minilm-l6"},
         note="no published numbers: the paper has no encoder task; dev accuracy (test labels "
              "are hidden)"),
)}


@dataclasses.dataclass(frozen=True)
class Scale:
  name: str
  args: str                      # config arguments of every cell at this scale
  models: dict                   # task -> model ('' keeps the config's default)
  seeds: tuple[int, ...]         # seeds of seeded figures (tables use seed 0)
  lowdata: int                   # examples of figure 5's low-data setting
  config_files: dict = dataclasses.field(default_factory=dict)  # task -> config file
  launcher: str = "local"
  task_args: dict = dataclasses.field(default_factory=dict)    # task -> arguments after `args`
  method_args: dict = dataclasses.field(default_factory=dict)  # method -> arguments where a
  #                                                              row does not set them itself


# Every row padded to one length (source 24 + target 16 + separators fit 48) and the loss
# positions to one count (4 rows x 17 fit 128), and each method one learning rate whatever the
# task (`method_args` below): a method's cells on E2E, WebNLG and DART then compile one train
# step, loaded by the others from the compilation cache.
_TINY_ARGS = ("steps=1,epochs=0,batch=4,n=8,train.log_every=1,train.checkpoint_every=100,"
              "data.bucket_size=48,data.loss_pos_multiple=128,"
              "data.max_source_len=24,data.max_target_len=16,data.num_eval_loss_examples=0,"
              "decode.num_examples=2,decode.beam_size=1,decode.max_new_tokens=2,"
              "prefix.mlp_hidden=8,llama_adapter.layers=2")

_MINI_ARGS = ("steps=200,epochs=0,batch=4,optim.warmup_steps=10,train.log_every=50,"
              "train.checkpoint_every=100,train.keep_checkpoints=1,data.max_source_len=192,"
              "data.max_target_len=96,"
              "data.bucket_size=32,data.loss_pos_multiple=64,data.num_eval_loss_examples=0,"
              "decode.beam_size=1,decode.max_new_tokens=80,decode.num_examples=100,"
              "decode.subset=spread,decode.batch_size=25")
# Larger steps for a short budget, per method, fixed before any run: the whole backbone moves
# least, vectors in front of it most (the demo's prefix rate, configs/demo.py).
_MINI_LR = {"finetune": "lr=5e-5", "finetune_top2": "lr=1e-4", "adapter": "lr=1e-3",
            "lora": "lr=1e-3", "prefix": "lr=5e-3", "infix": "lr=5e-3", "prompt": "lr=5e-3",
            "ptuning2": "lr=5e-3", "llama_adapter": "lr=5e-3"}
_SST2 = {"sst2": "configs/sst2_cls.py"}

SCALES = {
    # Random tiny backbones, one step on 8 examples, 2 decoded rows: seconds a cell (CI).
    "tiny": Scale("tiny", _TINY_ARGS, {"e2e": "tiny-gpt2", "webnlg": "tiny-gpt2",
                                       "dart": "tiny-gpt2", "xsum": "tiny-bart",
                                       "sst2": "tiny-bert"},
                  seeds=(0,), lowdata=8, launcher="inline", config_files=_SST2,
                  method_args=_MINI_LR),
    # The real SmolLM2-135M (MiniLM for SST-2) on this 2-core CPU, every cell the same budget:
    # 200 steps of 4 examples; greedy decoding of 100 test inputs spread over the split (WebNLG
    # seen and unseen in equal shares) against all their references. XSUM through the
    # decoder-only variant. results/mini/ holds what it measured.
    "mini": Scale("mini", _MINI_ARGS,
                  {"e2e": "smollm2-135m", "webnlg": "smollm2-135m", "dart": "smollm2-135m",
                   "xsum": "smollm2-135m", "sst2": "minilm-l6"},
                  seeds=(0, 1, 2), lowdata=100,
                  config_files={"xsum": "configs/xsum_decoder.py", **_SST2},
                  task_args={"sst2": "steps=300,batch=32,decode.num_examples=0,"
                                     "decode.subset=first,data.max_source_len=66,"
                                     "data.max_target_len=1"},
                  method_args=_MINI_LR),
    # The paper: GPT-2 medium (table-to-text), BART-large (XSUM, the config's default), full
    # data and each config's (the paper's) hyperparameters; for a GPU host.
    "paper": Scale("paper", "", {"e2e": "gpt2-medium", "webnlg": "gpt2-medium",
                                 "dart": "gpt2-medium", "xsum": "", "sst2": "minilm-l6"},
                   seeds=(0, 1, 2, 3, 4), lowdata=100, config_files=_SST2),
}
