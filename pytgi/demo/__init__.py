"""The bundled demo model: a small Llama in Hugging Face layout that `pytgi serve` uses by default.

`python -m pytgi.demo.train` rebuilds it; see docs/demo-model.md.
"""

from pathlib import Path

DEMO_MODEL_DIR: Path = Path(__file__).resolve().parent / "model"
