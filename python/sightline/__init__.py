"""sightline Python agent: traces this process's Python functions and exceptions into a
sightline hub (or an offline NDJSON file), with the hot path in Rust.

Use one of:

- ``sightline run -- python app.py`` (the hub's CLI sets PYTHONPATH so this loads itself),
- ``python -m sightline app.py [args]``,
- ``import sightline; sightline.start()`` in the program.

Configuration comes from keyword arguments, then ``SIGHTLINE_*`` environment variables
(see ``docs/PYTHON.md``).
"""

from ._agent import Agent, current, flush, start, status, stop, update_filters
from ._config import Config

__all__ = ["Agent", "Config", "current", "flush", "start", "status", "stop", "update_filters"]
__version__ = "0.1.0"
