"""The results folder: the record schema, atomic storage, the run manifest, pictures and ``ldce evaluate``."""
