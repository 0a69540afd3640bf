"""Security properties: nothing is deserialised with pickle, and a run writes only where it was told to.

Checkpoints and statistics are safetensors + JSON, configs go through a safe YAML loader; the package source is
scanned for every API that can execute code while loading (torch.load, pickle, numpy with allow_pickle, unsafe
YAML loaders). A training run is then checked file by file: everything it creates lies under its out_dir,
except the statistics cache, which by design sits next to the dataset (``<data>.rvstats/``) and is switched
off with ``data.stats_cache=false``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rvperceiver import cli
from rvperceiver.data.episodes import Episode
from rvperceiver.data.lerobot import read_lerobot, write_lerobot
from rvperceiver.data.robomimic import write_robomimic
from rvperceiver.errors import DataError

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rvperceiver"
CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml")
pytestmark = pytest.mark.filterwarnings("ignore::rvperceiver.train.loop.CollapseWarning")

# API -> why it is dangerous. Matched on code with comments and strings removed.
FORBIDDEN = {
    r"\btorch\.load\s*\(": "torch.load unpickles",
    r"\btorch\.save\s*\(": "torch.save pickles",
    r"\bimport\s+pickle\b|\bfrom\s+pickle\b|\bpickle\.": "pickle",
    r"\bimport\s+dill\b|\bimport\s+cloudpickle\b|\bjoblib\b|\bshelve\b|\bmarshal\.loads?\b": "pickle-like",
    r"allow_pickle\s*=\s*True": "numpy with allow_pickle=True",
    r"\byaml\.(unsafe_load|full_load|load_all)\b|Loader\s*=\s*yaml\.(Loader|FullLoader|UnsafeLoader)\b": "unsafe YAML",
    r"(?<![\w.])(eval|exec)\s*\(": "builtin eval/exec",
}


def _code_only(source: str) -> str:
    """Source without comments and string literals (docstrings mention torch.load to say it is not used)."""
    import io
    import tokenize

    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.STRING):
            kept.append(token.string)
    return " ".join(kept)


def test_no_pickle_or_unsafe_loader_anywhere_in_the_package() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    hits = []
    for path in files:
        code = _code_only(path.read_text(encoding="utf-8"))
        code = code.replace(". ", ".").replace(" .", ".").replace(" (", "(")  # tokens were joined with spaces
        for pattern, why in FORBIDDEN.items():
            if re.search(pattern, code):
                hits.append(f"{path.relative_to(PACKAGE)}: {why}")
    assert hits == []


def test_every_np_load_and_yaml_load_is_safe() -> None:
    for path in PACKAGE.rglob("*.py"):
        code = _code_only(path.read_text(encoding="utf-8")).replace(" ", "")
        for call in re.findall(r"np\.load\(([^)]*)\)", code):
            assert "allow_pickle=False" in call or "allow_pickle" not in call, (path, call)  # default is False
        for call in re.findall(r"yaml\.load\(([^)]*)\)", code):
            assert "Loader=_StrictLoader" in call or "SafeLoader" in call, (path, call)
    from rvperceiver.train.config import _StrictLoader
    import yaml

    assert issubclass(_StrictLoader, yaml.SafeLoader)
    with pytest.raises(Exception):  # a python-object tag is refused, not constructed
        yaml.load("!!python/object/apply:os.system ['true']", Loader=_StrictLoader)


def _episodes(n: int = 3) -> list[Episode]:
    rng = np.random.default_rng(0)
    return [
        Episode(f"demo_{i}", rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8), rng.normal(size=(10, 3)).astype(np.float32))
        for i in range(n)
    ]


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.mark.parametrize("stats_cache", [False, True])
def test_a_run_writes_only_inside_its_out_dir(tmp_path: Path, stats_cache: bool) -> None:
    data = write_robomimic(tmp_path / "data" / "demos.hdf5", _episodes())
    before = _files(tmp_path)
    code = cli.main(["train", "--config", CONFIG, f"data.path={data}", "steps=2", "checkpoint_every=1",
                     "tensorboard=true", "view_choice=adaptive", f"data.stats_cache={str(stats_cache).lower()}",
                     "--out", str(tmp_path / "runs" / "r"), "--quiet"])
    assert code == 0
    # Resume and predict too: every writing code path of a run.
    assert cli.main(["train", "--config", CONFIG, f"data.path={data}", "steps=3", "checkpoint_every=1",
                     "tensorboard=true", "view_choice=adaptive", f"data.stats_cache={str(stats_cache).lower()}",
                     "--out", str(tmp_path / "runs" / "r"), "--quiet", "--resume"]) == 0
    created = _files(tmp_path) - before
    run = Path("runs") / "r"
    cache = Path("data") / "demos.hdf5.rvstats"
    outside = sorted(p for p in created if p != Path("runs") and run not in p.parents and p != run
                     and not (stats_cache and (p == cache or cache in p.parents)))
    assert outside == []
    inside = {p.relative_to(run).parts[0] for p in created if run in p.parents}
    assert inside == {"checkpoints", "metrics.jsonl", "split.json", "view_choice.json", "tensorboard", "learning_curve.png"}
    assert any(cache in p.parents for p in created) == stats_cache


def test_run_outputs_are_json_and_safetensors_only(tmp_path: Path) -> None:
    data = write_robomimic(tmp_path / "demos.hdf5", _episodes())
    out = tmp_path / "r"
    assert cli.main(["train", "--config", CONFIG, f"data.path={data}", "steps=1", "data.stats_cache=false",
                     "--out", str(out), "--quiet"]) == 0
    suffixes = {p.suffix for p in out.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".jsonl", ".safetensors", ".png"}  # .png: the learning curve, a picture
    for path in (out / "checkpoints").rglob("*.safetensors"):
        header_length = int.from_bytes(path.read_bytes()[:8], "little")
        json.loads(path.read_bytes()[8 : 8 + header_length])  # a plain JSON header, then raw tensor bytes
    predictions = tmp_path / "p.npz"
    assert cli.main(["predict", "--checkpoint", str(out), "--data", str(data), "--out", str(predictions)]) == 0
    with np.load(predictions, allow_pickle=False) as loaded:  # no object arrays in there
        assert {"prediction", "target", "episode", "start"} <= set(loaded.files)
        assert loaded["episode"].dtype.kind == "U"


@pytest.mark.parametrize("template", ["../outside/file-{file_index:03d}.parquet", "/etc/file-{file_index:03d}.parquet"])
def test_lerobot_path_templates_cannot_leave_the_dataset(tmp_path: Path, template: str) -> None:
    root = tmp_path / "ds"
    write_lerobot(root, _episodes(2))
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["data_path"] = template
    info_path.write_text(json.dumps(info))
    with pytest.raises(DataError, match="leaves the dataset directory"):
        read_lerobot(root)
