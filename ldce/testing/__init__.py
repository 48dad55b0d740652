"""Test and benchmark support: tiny models with random weights, the golden vectors' format, and a
re-creation of the original implementation's step structure. Not used by ldce itself; importable
by your own tests (like ``torch.testing``)."""
