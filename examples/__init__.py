"""Examples of conv_ext, run from the repository root as modules (python -m examples.<name>...)."""
