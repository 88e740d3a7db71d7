"""Kept for callers of the names it used to hold: running a server is `serving.runner`."""

from shipyard.serving.runner import BackgroundServer, bind, serve_forever

__all__ = ["BackgroundServer", "bind", "serve_forever"]
