"""The scoring service: one ASGI app that hosts any score.py (init/run) over HTTP."""
