"""The MFU FLOPs formula against a hand count."""

from rexbert.model.config import RexBertConfig
from rexbert.train.flops import step_flops


def test_step_flops_hand_count():
    cfg = RexBertConfig(num_layers=3, hidden_size=8, num_attention_heads=2, ffn_hidden_size=12, vocab_size=100,
                        local_attention_window=4)  # layer 0 global; layers 1, 2 local (window + 1 = 5 keys)
    lengths = [10, 3]
    dense = 2 * (4 * 64 + 3 * 8 * 12) * 13 * 3
    attention = 4 * 8 * (10 * 10 + 3 * 3) + 2 * 4 * 8 * (10 * 5 + 3 * 3)
    head = 2 * (64 + 800) * 4
    assert step_flops(cfg, lengths, 4) == 3 * (dense + attention + head)
