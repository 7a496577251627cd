"""``rexbert experiment <name>``: several training recipes with one budget, seeds and data,
evaluated by the same suite, reported as tables and plots in docs/results/<name>/."""
