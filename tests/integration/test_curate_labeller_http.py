"""The http labeller against a real local OpenAI-compatible server (http.server, in this
test) with injected faults: timeouts, HTTP 500s and 429s, malformed json, replies naming no
label, an item that always fails, a rejected request, and the labelling process SIGKILLed
mid-run. Every item ends with exactly one stored label; after the kill, the rerun sends
requests only for items without a stored label (counted on the server side); the API key
is sent but never logged or written."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_tools.curate.label import main, text_sha256

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = ROOT / "rexbert" / "sample_data" / "products.jsonl"
GENERAL = ROOT / "rexbert" / "sample_data" / "general.jsonl"
VERSION = "ecommerce_relevance_v1"
MODEL = "fake-llm"
SECRET = "sk-test-never-in-a-log-7d1e"
TIMEOUT_S = 0.5
MAX_RETRIES = 3
ITEM = re.compile(r"item-(\d{3}|poison|reject)")

# Fault plan, by item number % 7: the replies to attempts 1, 2, ... (then "ok").
PLANS = {
    0: [],                                # a plain answer
    1: ["sleep"],                         # slower than the client's timeout, once
    2: ["500", "500"],                    # two server errors
    3: ["malformed"],                     # a body that is not json
    4: ["unparseable"],                   # valid json whose answer names no label
    5: ["json_label"],                    # answers {"label": ...} right away
    6: ["429"],                           # rate-limited once (Retry-After: 0)
}


def expected_label(key: str) -> str:
    return "relevant" if int(key) % 2 == 0 else "not_relevant"


def expected_attempts(key: str) -> int:
    plan = PLANS[int(key) % 7]
    return 1 if plan == ["json_label"] else len(plan) + 1


class FakeLLM:
    """An OpenAI-compatible /v1/chat/completions whose replies follow the item named in the
    user message (item-NNN: even → relevant, odd → not_relevant) and the fault plan."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.counts: Counter = Counter()
        self.auth: set = set()
        self.bodies: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                try:
                    fake.handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): expected for "sleep"

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
        key = ITEM.search(body["messages"][-1]["content"]).group(1)
        with self.lock:
            self.counts[key] += 1
            attempt = self.counts[key]
            self.auth.add(h.headers.get("Authorization"))
            self.bodies.append({k: body[k] for k in ("model", "temperature")})
        if self.delay_s:
            time.sleep(self.delay_s)
        if h.path != "/v1/chat/completions" or key == "reject":
            # Like some servers, echo what was sent: the client must redact the key.
            return self.send(h, 401, json.dumps({"error": f"bad key {h.headers.get('Authorization')}"}).encode())
        if key == "poison":
            return self.send(h, 500, b'{"error": "always failing"}')
        plan = PLANS[int(key) % 7]
        action = plan[attempt - 1] if attempt <= len(plan) and plan != ["json_label"] else "ok"
        label = expected_label(key)
        if action == "sleep":
            time.sleep(TIMEOUT_S * 3)
            content = label
        elif action in ("500", "429"):
            return self.send(h, int(action), b'{"error": "try again"}', {"Retry-After": "0"})
        elif action == "malformed":
            return self.send(h, 200, b'{"choices": [{"message": {"content": "rel')
        elif action == "unparseable":
            content = "I am not sure about this one."
        elif plan == ["json_label"]:
            content = json.dumps({"label": label})
        else:
            content = f"Label: {label}."
        reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}]}
        self.send(h, 200, json.dumps(reply).encode())

    @staticmethod
    def send(h, status: int, payload: bytes, headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(payload)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def llm():
    server = FakeLLM()
    yield server
    server.close()


def make_shard(tmp_path: Path, n: int, extra: tuple[str, ...] = ()) -> tuple[Path, dict[str, str]]:
    """n real documents (products for even items, Hamlet for odd), each naming its item."""
    products = [json.loads(x)["text"] for x in PRODUCTS.read_text().splitlines()]
    hamlet = [json.loads(x)["text"] for x in GENERAL.read_text().splitlines()]
    rows, texts = [], {}
    keys = [f"{i:03d}" for i in range(n)] + list(extra)
    for i, key in enumerate(keys):
        text = f"item-{key} " + (products[i] if i % 2 == 0 else hamlet[i])
        rows.append({"id": f"doc-{key}", "text": text, "domain": "shop" if i % 2 == 0 else "books"})
        texts[key] = text
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, texts


def cli_args(shard: Path, out: Path, url: str, concurrency: int = 4) -> list[str]:
    return [str(shard), "-o", str(out), "--backend", "http", "--model", MODEL, "--base-url", url,
            "--api-key-env", "FAKE_LLM_KEY", "--timeout", str(TIMEOUT_S), "--max-retries", str(MAX_RETRIES),
            "--backoff", "0.01", "--backoff-max", "0.05", "--concurrency", str(concurrency), "--no-progress", "-v"]


def stored(out: Path) -> dict[str, list[str]]:
    """text sha256 -> every label stored for it under this prompt version and model."""
    with sqlite3.connect(out / "label_cache.sqlite") as db:
        rows = db.execute("SELECT text_sha256, label FROM labels WHERE prompt_version = ? AND model = ?",
                          (VERSION, MODEL)).fetchall()
    found: dict[str, list[str]] = {}
    for sha, label in rows:
        found.setdefault(sha, []).append(label)
    return found


def assert_every_item_labelled_once(out: Path, texts: dict[str, str]) -> None:
    labels = stored(out)
    assert sorted(labels) == sorted(text_sha256(t) for t in texts.values())
    for key, text in texts.items():
        assert labels[text_sha256(text)] == [expected_label(key)], key
    rows = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"doc-{k}" for k in texts]
    assert all(r["label"] == expected_label(r["id"][4:]) and r["model"] == MODEL for r in rows)


def test_faults_are_retried_and_every_item_gets_one_label(tmp_path, llm, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_LLM_KEY", SECRET)
    shard, texts = make_shard(tmp_path, 28)  # every fault plan 4 times, both labels
    out = tmp_path / "out"
    caplog.set_level("DEBUG")
    started = time.monotonic()
    assert main(cli_args(shard, out, llm.url)) == 0
    seconds = time.monotonic() - started
    assert_every_item_labelled_once(out, texts)
    # Each fault cost exactly the planned retries: no more, no fewer.
    assert dict(llm.counts) == {k: expected_attempts(k) for k in texts}
    stats = json.loads((out / "labels.stats.json").read_text())
    assert stats["requests_sent"] == sum(llm.counts.values()) == 52
    assert stats["unlabelled"] == 0 and stats["labelled_now"] == 28
    assert stats["per_domain"] == {"books": {"not_relevant": 14}, "shop": {"relevant": 14}}
    assert llm.auth == {f"Bearer {SECRET}"} and {b["temperature"] for b in llm.bodies} == {0}
    assert {b["model"] for b in llm.bodies} == {MODEL}
    assert "timeout" in caplog.text and "HTTP 500" in caplog.text and "malformed" in caplog.text
    assert SECRET not in caplog.text
    assert seconds < 15, seconds

    llm.reset()  # a rerun asks the server nothing
    assert main(cli_args(shard, out, llm.url)) == 0
    assert sum(llm.counts.values()) == 0
    assert json.loads((out / "labels.stats.json").read_text())["cache_hits"] == 28


def test_killed_run_resumes_asking_only_for_missing_labels(tmp_path):
    llm = FakeLLM(delay_s=0.05)  # slow enough to kill mid-run
    try:
        shard, texts = make_shard(tmp_path, 40)
        out = tmp_path / "out"
        env = dict(os.environ, PYTHONPATH=str(ROOT), FAKE_LLM_KEY=SECRET)
        cmd = [sys.executable, "-m", "data_tools.curate.label", *cli_args(shard, out, llm.url, concurrency=2)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:  # kill once some, not all, labels are stored
            assert proc.poll() is None, "the labelling run ended before it could be killed"
            assert time.monotonic() < deadline, "no labels stored in time"
            try:
                if len(stored(out)) >= 10:
                    break
            except sqlite3.Error:
                pass  # the cache does not exist yet
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        killed_log = proc.communicate()[0]
        before = stored(out)
        assert 10 <= len(before) < 40
        assert not (out / "labels.jsonl").exists()  # outputs are written only at the end
        for key, text in texts.items():  # what was stored before the kill is right
            if text_sha256(text) in before:
                assert before[text_sha256(text)] == [expected_label(key)]

        llm.reset()
        rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr.decode()
        missing = {k for k, t in texts.items() if text_sha256(t) not in before}
        assert set(llm.counts) == missing  # counted on the server side
        assert dict(llm.counts) == {k: expected_attempts(k) for k in missing}
        stats = json.loads((out / "labels.stats.json").read_text())
        assert stats["cache_hits"] == len(before) and stats["labelled_now"] == len(missing)
        assert stats["requests_sent"] == sum(llm.counts.values())
        assert_every_item_labelled_once(out, texts)
        assert not list(out.glob(".*.partial"))

        everything = killed_log + rerun.stdout + rerun.stderr
        everything += b"".join(p.read_bytes() for p in out.iterdir() if p.is_file())
        assert llm.auth == {f"Bearer {SECRET}"}
        assert SECRET.encode() not in everything
    finally:
        llm.close()


def test_item_failing_every_retry_stays_unlabelled_and_is_reported(tmp_path, llm, monkeypatch):
    shard, texts = make_shard(tmp_path, 6, extra=("poison",))
    out = tmp_path / "out"
    assert main(cli_args(shard, out, llm.url)) == 1  # unlabelled over max_unlabelled_fraction=0
    assert llm.counts["poison"] == MAX_RETRIES + 1
    unlabelled = [json.loads(x) for x in (out / "labels.unlabelled.jsonl").read_text().splitlines()]
    assert unlabelled == [{"id": "doc-poison", "domain": "shop", "error": "HTTP 500"}]
    stats = json.loads((out / "labels.stats.json").read_text())
    assert stats["labelled"] == 6 and stats["unlabelled"] == 1
    labels = stored(out)
    assert text_sha256(texts["poison"]) not in labels and len(labels) == 6

    llm.reset()  # a rerun retries only the unlabelled item; tolerated when allowed
    assert main(cli_args(shard, out, llm.url) + ["--max-unlabelled-fraction", "0.2"]) == 0
    assert dict(llm.counts) == {"poison": MAX_RETRIES + 1}


def test_rejected_request_stops_the_run_with_the_key_redacted(tmp_path, llm, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_LLM_KEY", SECRET)
    shard, _ = make_shard(tmp_path, 0, extra=("reject",))
    assert main(cli_args(shard, tmp_path / "out", llm.url)) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "bad key Bearer ***" in err and SECRET not in err
    assert llm.counts["reject"] == 1  # a 401 is not retried
