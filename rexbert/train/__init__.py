"""Training: optimizer, schedules, checkpoints and the trainer loop."""
