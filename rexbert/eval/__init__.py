"""Evaluation of exported (Hugging Face) encoders."""
