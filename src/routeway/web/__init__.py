"""The web dashboard: model pages, rankings, activity, keys and a chat playground, served at ``/``."""

from routeway.web.dashboard import Dashboard

__all__ = ["Dashboard"]
