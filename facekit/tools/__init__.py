"""Checks the project runs on its own code (``python -m facekit.tools.<name>``)."""
