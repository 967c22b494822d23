"""Training: loss, the compiled data-parallel step, optimizer, checkpoints, the loop."""
