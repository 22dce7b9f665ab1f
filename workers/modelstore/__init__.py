"""The model store: weights pulled or imported into STUDIO_MODEL_STORE, verified by
size and hash, loaded by GPU workers."""
