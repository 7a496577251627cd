"""Labelling through an OpenAI-compatible chat-completions API (vLLM, TGI, SGLang, hosted).

One request per text, ``concurrency`` in flight (a thread pool, one ``requests`` session per
thread). Timeouts, connection errors, HTTP 408/429/5xx, replies that are not the expected
json and replies naming no label are retried with exponential backoff and jitter (a
``Retry-After`` header is honoured up to the backoff cap); after ``max_retries`` retries
the text stays unlabelled, with the last reason. Other 4xx answers (bad URL, rejected key,
unknown model) cannot be fixed by retrying and stop the run.

The API key is read from the environment variable the config names, sent only in the
Authorization header, and redacted from every message this module produces.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Iterator, Optional, Sequence

import requests

from .backends import LabellerError, LabelResult
from .config import LabelConfig
from .prompt import Prompt

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 429}


class HttpLabeller:
    def __init__(self, config: LabelConfig, prompt: Prompt) -> None:
        self.model_name = config.model
        self.requests_sent = 0
        self._http = config.http
        self._prompt = prompt
        self._concurrency = config.concurrency
        self._url = config.http.base_url.rstrip("/") + "/chat/completions"
        self._key: Optional[str] = os.environ.get(config.http.api_key_env) or None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            s = requests.Session()
            s.headers["Content-Type"] = "application/json"
            if self._key:
                s.headers["Authorization"] = f"Bearer {self._key}"
            self._local.session = s
        return self._local.session

    def _redact(self, message: str) -> str:
        return message.replace(self._key, "***") if self._key else message

    def _backoff(self, retry: int, retry_after: Optional[float]) -> float:
        cap = self._http.backoff_max_s
        delay = min(cap, self._http.backoff_initial_s * 2 ** (retry - 1))
        with self._lock:
            delay *= 0.5 + 0.5 * self._rng.random()  # jitter: spreads retries of a burst
        if retry_after is not None:
            delay = max(delay, min(retry_after, cap))
        return delay

    def _count_request(self) -> None:
        with self._lock:
            self.requests_sent += 1

    def label_one(self, text: str) -> LabelResult:
        """One text through the API, with retries; raises LabellerError only for failures
        that no retry can fix."""
        payload = {"model": self.model_name, "messages": self._prompt.messages(text),
                   "temperature": 0, "max_tokens": self._http.max_tokens}
        error, raw, retry_after = "not attempted", None, None
        attempts = 0
        for attempt in range(self._http.max_retries + 1):
            if attempt:
                if self._stop.wait(self._backoff(attempt, retry_after)):
                    break
                log.debug("retry %d after: %s", attempt, error)
            elif self._stop.is_set():
                break
            attempts += 1
            retry_after = None
            self._count_request()
            try:
                response = self._session().post(self._url, json=payload, timeout=self._http.timeout_s)
            except requests.Timeout:
                error = f"timeout after {self._http.timeout_s} s"
                continue
            except requests.ConnectionError as e:
                error = self._redact(f"connection error: {_reason(e)}")
                continue
            except requests.RequestException as e:
                raise LabellerError(self._redact(f"request to {self._url} failed: {e}")) from None
            status = response.status_code
            if status in _RETRY_STATUS or status >= 500:
                error = f"HTTP {status}"
                retry_after = _retry_after(response)
                continue
            if status >= 400:
                body = self._redact(response.text[:300])
                raise LabellerError(f"HTTP {status} from {self._url} (model {self.model_name!r}): {body}")
            try:
                raw = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                error = "malformed response (not an OpenAI chat-completions json)"
                continue
            label = self._prompt.parse(raw) if isinstance(raw, str) else None
            if label is None:
                error = self._redact(f"unparseable reply {str(raw)[:80]!r}")
                continue
            return LabelResult(label, attempts=attempts, raw=raw)
        if not self._stop.is_set():
            log.warning("no label after %d attempt(s), last: %s", attempts, error)
        return LabelResult(None, error=error, attempts=attempts, raw=raw)

    def label(self, texts: Sequence[str]) -> Iterator[tuple[int, LabelResult]]:
        self._stop.clear()
        pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="label-http")
        pending: dict[Future, int] = {}
        try:
            todo = iter(enumerate(texts))
            # Keep at most 2 x concurrency submitted, so stopping early cancels cheaply.
            for i, text in todo:
                pending[pool.submit(self.label_one, text)] = i
                if len(pending) >= 2 * self._concurrency:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    yield i, future.result()
                for i, text in todo:
                    pending[pool.submit(self.label_one, text)] = i
                    if len(pending) >= 2 * self._concurrency:
                        break
        finally:
            self._stop.set()  # a consumer that stops early (or an error) ends the retries
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._stop.set()


def _reason(e: Exception) -> str:
    # requests nests the OS error deep in its message; keep just "[Errno 111] Connection refused".
    found = re.search(r"\[Errno -?\d+\][^'\")]*", str(e))
    return found.group(0).strip() if found else type(e).__name__


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
