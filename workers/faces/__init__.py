"""Faces: detection, alignment and identity embeddings (``base``, with the
providers ``dlib_provider`` and ``insightface_provider``), the quality of a
reference photo (``quality``, ``references``), a character's identity and
the grouping of faces into people (``identity``), and the consistency gate
that checks every scene against its character (``gate``, over ``frames``).
"""
