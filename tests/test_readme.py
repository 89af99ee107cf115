"""The README's "Analyse your own model" block runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_analyse_your_own_model_block_runs(capsys):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Analyse your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the section has a python block"
    exec(compile(blocks[0], "README.md", "exec"), {})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "lambda_max" in out and "lambda_min" in out
    # the wrapped step function: x_K affine in x_0 with M = (I - 0.4 I)^4, H_0 = 2 M^T M: trace 32 * 0.6^8
    last = float(out.strip().splitlines()[-1])
    assert abs(last - 32 * 0.6**8) < 1e-10
