"""Pure nn.Module builders, one file per model (no Lightning here)."""
