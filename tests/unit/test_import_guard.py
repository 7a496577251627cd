"""GPU-only libraries are imported in one place (megatron_ext/compat.py) and nowhere else,
so every module imports on a CPU machine, and GPU-only features fail with one clear error."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED_DIRS = ("rexbert", "megatron_ext", "data_tools", "bench", "launch")
PACKAGES = ("rexbert", "megatron_ext", "data_tools")
GUARD = Path("megatron_ext/compat.py")
BLOCKED = ("transformer_engine", "flash_attn", "apex", "nvidia.dali")
IMPORT_CALLS = {"import_module", "__import__", "find_spec"}


def _blocked(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in BLOCKED)


def gpu_imports(source: str) -> list[str]:
    """Module names from BLOCKED that `source` imports, at any nesting level.

    Also catches `importlib.import_module("...")` / `__import__("...")` with a literal name.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if not _blocked(node.module):  # `from nvidia import dali` names it via the alias
                names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            func_name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if func_name in IMPORT_CALLS and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found.extend(n for n in names if _blocked(n))
    return found


def test_checker_sees_every_import_form() -> None:
    source = textwrap.dedent(
        """
        import os, transformer_engine.pytorch as te
        from nvidia import dali
        def f():
            try:
                from flash_attn.flash_attn_interface import flash_attn_varlen_func
            except ImportError:
                pass
        class C:
            import apex
        importlib.import_module("nvidia.dali.fn")
        import apexx, nvidia.cuda_runtime, flash_attention
        """
    )
    assert sorted(gpu_imports(source)) == [
        "apex", "flash_attn.flash_attn_interface", "nvidia.dali", "nvidia.dali.fn",
        "transformer_engine.pytorch",
    ]  # fmt: skip


def test_only_compat_imports_gpu_libraries() -> None:
    offenders: dict[str, list[str]] = {}
    scanned = 0
    for folder in SCANNED_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            scanned += 1
            hits = gpu_imports(path.read_text(encoding="utf-8"))
            if hits and rel != GUARD:
                offenders[str(rel)] = hits
    assert scanned > 0 and (ROOT / GUARD).is_file()
    assert not offenders, f"import these through megatron_ext.compat instead: {offenders}"


# Runs in a fresh interpreter where the GPU libraries cannot be imported, as on a CPU box
# without them (even if this machine happens to have them).
_BLOCKED_SCRIPT = """
import importlib, importlib.abc, json, pkgutil, sys, traceback

BLOCKED = {blocked!r}

class BlockGpuLibs(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == r or name.startswith(r + ".") for r in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by test)", name=name)
        return None

sys.meta_path.insert(0, BlockGpuLibs())
out = {{"imported": [], "failed": {{}}}}

def fail(name):
    out["failed"][name] = traceback.format_exc()

for pkg_name in {packages!r}:
    try:
        pkg = importlib.import_module(pkg_name)
    except ModuleNotFoundError as err:
        if err.name == pkg_name:  # package not written yet
            continue
        fail(pkg_name)
        continue
    except Exception:
        fail(pkg_name)
        continue
    out["imported"].append(pkg_name)
    names = [info.name for info in
             pkgutil.walk_packages(pkg.__path__, pkg_name + ".", onerror=fail)]
    # walk_packages does not descend into folders without __init__.py (namespace
    # packages); the caller passes every module it found on disk as well.
    names += [n for n in {modules!r} if n.startswith(pkg_name + ".") and n not in names]
    for name in names:
        if name.rsplit(".", 1)[-1] == "__main__":
            continue
        try:
            importlib.import_module(name)
            out["imported"].append(name)
        except Exception:
            fail(name)

from megatron_ext import compat
out["flags"] = {{k: getattr(compat, k) for k in
                ("HAVE_TE", "HAVE_FLASH_ATTN", "HAVE_APEX", "HAVE_DALI")}}
out["require"] = {{}}
for fn in ("require_te", "require_flash_attn", "require_apex", "require_dali"):
    try:
        getattr(compat, fn)("the test feature")
        out["require"][fn] = None
    except ImportError as err:
        out["require"][fn] = str(err)

if importlib.util.find_spec("rexbert.model") and importlib.util.find_spec("rexbert.model.specs"):
    try:
        from rexbert.model.config import RexBertConfig
        from rexbert.model.specs import get_rexbert_layer_specs
        cfg = RexBertConfig(num_layers=2, hidden_size=64, num_attention_heads=2,
                            ffn_hidden_size=96, vocab_size=128,
                            transformer_impl="transformer_engine")
        get_rexbert_layer_specs(cfg)
        out["te_spec"] = {{"raised": None}}
    except Exception as err:
        out["te_spec"] = {{"raised": type(err).__name__, "isinstance_import_error":
                          isinstance(err, ImportError), "message": str(err),
                          "traceback": traceback.format_exc()}}

with open(sys.argv[1], "w") as f:
    json.dump(out, f)
"""


def modules_on_disk() -> list[str]:
    names = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1] != "__main__":
                names.append(".".join(parts))
    return names


@pytest.fixture(scope="module")
def blocked_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = tmp_path_factory.mktemp("guard") / "result.json"
    on_disk = modules_on_disk()
    script = _BLOCKED_SCRIPT.format(blocked=BLOCKED, packages=PACKAGES, modules=on_disk)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "disabled"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", script, str(result)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {**json.loads(result.read_text()), "on_disk": on_disk}


def test_every_module_imports_without_gpu_libraries(blocked_run: dict[str, Any]) -> None:
    assert not blocked_run["failed"], "\n\n".join(
        f"{name}:\n{tb}" for name, tb in blocked_run["failed"].items()
    )
    missed = set(blocked_run["on_disk"]) - set(blocked_run["imported"])
    assert not missed, f"modules never imported: {sorted(missed)}"
    assert {"megatron_ext.compat", "rexbert.tokenizer", "rexbert.sample_data"} <= set(
        blocked_run["imported"]
    )


def test_compat_reports_missing_libraries(blocked_run: dict[str, Any]) -> None:
    assert blocked_run["flags"] == dict.fromkeys(
        ("HAVE_TE", "HAVE_FLASH_ATTN", "HAVE_APEX", "HAVE_DALI"), False
    )
    packages = {"require_te": "transformer-engine", "require_flash_attn": "flash-attn",
                "require_apex": "NVIDIA apex", "require_dali": "nvidia-dali"}  # fmt: skip
    for fn, message in blocked_run["require"].items():
        assert message is not None, f"{fn} returned a module although it is blocked"
        assert message.startswith(f"the test feature needs {packages[fn]}: ")
        assert "docker/Dockerfile" in message
        # The original reason is kept (the blocker's, or a genuinely absent parent package).
        assert "(import failed: ModuleNotFoundError: No module named" in message


def test_te_layer_spec_needs_transformer_engine(blocked_run: dict[str, Any]) -> None:
    pytest.importorskip("rexbert.model.specs")
    te_spec = blocked_run.get("te_spec")
    assert te_spec is not None, "rexbert.model.specs was not found in the blocked subprocess"
    assert te_spec["raised"] is not None, "TE layer specs were built without transformer-engine"
    assert te_spec["isinstance_import_error"], te_spec["traceback"]
    assert "transformer-engine" in te_spec["message"]
