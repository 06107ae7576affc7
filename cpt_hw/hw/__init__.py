"""The accelerator's contract and models, in plain Python (no torch): the config, its register map,
the golden model, the call rules, the emulated device and the timing models."""
