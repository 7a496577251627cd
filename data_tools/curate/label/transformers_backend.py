"""Labelling with a local causal LM (``label.model`` is its directory; nothing is downloaded).

The model answers the same prompt as the http backend: through the tokenizer's chat template
when it has one (instruction-tuned models), else as plain ``system + user`` text. Decoding is
greedy, so asking again would give the same answer: an unparseable answer is not retried and
the text stays unlabelled with the answer in its error. A causal LM was chosen over a
sequence-classification head because it reuses the versioned prompt and definition as is;
a classifier would need its own training data and label mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from ..shards import CurationError
from .backends import LabelResult
from .config import LabelConfig
from .prompt import Prompt


class TransformersLabeller:
    def __init__(self, config: LabelConfig, prompt: Prompt) -> None:
        path = Path(config.model)
        if not path.is_dir():
            raise CurationError(f"label.model={config.model!r}: not a local model directory "
                                "(the transformers backend never downloads)")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise CurationError(f"label.model={config.model!r}: cannot load a causal LM ({e})") from None
        self._model.to(config.transformers.device).eval()
        self._tokenizer.padding_side = "left"  # generation continues at the right end
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._torch = torch
        self._prompt = prompt
        self._settings = config.transformers
        self.model_name = config.model
        self.requests_sent = 0

    def _render(self, text: str) -> str:
        messages = self._prompt.messages(text)
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages)

    def label(self, texts: Sequence[str]) -> Iterator[tuple[int, LabelResult]]:
        size = self._settings.batch_size
        for start in range(0, len(texts), size):
            batch = [self._render(t) for t in texts[start:start + size]]
            encoded = self._tokenizer(batch, return_tensors="pt", padding=True).to(self._model.device)
            with self._torch.no_grad():
                out = self._model.generate(**encoded, max_new_tokens=self._settings.max_new_tokens,
                                           do_sample=False, pad_token_id=self._tokenizer.pad_token_id)
            answers = self._tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:],
                                                   skip_special_tokens=True)
            for offset, answer in enumerate(answers):
                self.requests_sent += 1
                label = self._prompt.parse(answer)
                error = None if label else f"unparseable reply {answer[:80]!r}"
                yield start + offset, LabelResult(label, error=error, raw=answer)

    def close(self) -> None:
        pass
