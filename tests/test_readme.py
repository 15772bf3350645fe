"""The README's Python example runs as written (up to loading a finished run)."""

import re
from pathlib import Path


def test_readme_python_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = code.split("encoder = byol.load_encoder")[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["loss"].ndim == 0 and namespace["encoder"] is namespace["model"].online_encoder
