"""prefix_jax: prefix-tuning, prompt tuning and deep prompt tuning in JAX/Flax."""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax>=0.7",
    "flax>=0.10",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "ml-collections>=1.0",
    "absl-py>=2.1",
    "numpy>=1.26",
    # ml_dtypes 0.7 registers its NumPy ufunc loops one by one through a search that grows with
    # every loop registered: its import costs more CPU than the rest of `import jax`, in every
    # process (docs/benchmarks.md, "Start-up of every process").
    "ml-dtypes>=0.5,<0.7",
    "safetensors>=0.4",
    "tokenizers>=0.20",
    "gguf>=0.10",
    "tensorflow-datasets>=4.9.7",
    "importlib_resources>=6.0",
    "array_record>=0.5",
    "sacrebleu>=2.4",
    "rouge-score>=0.1.2",
    "nltk>=3.9",
    "pycocoevalcap==1.2",  # METEOR 1.5 jar (needs java), CIDEr, ROUGE-L of the E2E suite
    "tqdm>=4.66",
    "tensorboardX>=2.6",
    "matplotlib>=3.8",
    "fastapi>=0.110",  # prefix_jax.serve
    "uvicorn>=0.29",
    "httptools>=0.6",  # uvicorn's C HTTP parser (else h11, pure Python, on every request)
    "tabulate>=0.9",  # sweep and paper tables (Markdown, LaTeX)
]

# torch is pinned exactly: the Makefile installs the CPU build from disk *before*
# this extra so that peft/transformers never pull a CUDA build.
TEST_REQUIRES = [
    "pytest>=8",
    "pytest-xdist>=3.5",
    "torch==2.13.0",
    # 5.24 dropped past_key_values from BertForSequenceClassification.forward, which peft's
    # prefix tuning needs (the BERT parity test); 5.23 is the last release that has it.
    "transformers>=4.46,<5.24",
    "peft>=0.13",
    "httpx>=0.27",  # the serving tests' HTTP client
]

# aiohttp: the serving benchmark's HTTP clients (about half httpx's CPU per request)
BENCH_REQUIRES = TEST_REQUIRES + ["psutil>=5.9", "aiohttp>=3.9"]

setup(
    name="prefix_jax",
    version="0.1.0",
    description="Prefix-tuning (Li & Liang 2021) and relatives in JAX/Flax",
    packages=find_packages(include=["prefix_jax", "prefix_jax.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES, "bench": BENCH_REQUIRES},
)
