"""paramiko without invoke's import cost: invoke is loaded when a `Match exec` first needs it.

paramiko's config module imports invoke (fabric's task runner, installed with fabric) when
paramiko is imported, only to run the commands of `Match exec` lines of an ssh config it
parses. That import, with the importlib.metadata it pulls in, is about 70 ms of paramiko's
~0.16 s, and a check or apply over paramiko paid it before its first connection. harden has
paramiko parse an ssh config only when no ssh client is installed
(harden.ssh.sshconfig._paramiko_lookup); otherwise invoke is never used.

`defer_invoke()`, called before paramiko is imported, puts a stand-in module under the name
`invoke`: paramiko's `import invoke` binds the stand-in, and its first attribute use (paramiko
calling `invoke.run`) imports the real invoke. importlib.util.LazyLoader cannot do this: the
`import` statement itself reads the module's `__spec__`, which LazyLoader counts as a use, so
paramiko's own import would load invoke at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

_LOCK = threading.Lock()


class _Deferred(types.ModuleType):
    """Holds `__spec__` and `__name__` (enough for `import`), imports the real module on the
    first other attribute asked of it."""

    def __getattr__(self, name: str):
        return getattr(_load(self), name)


def defer_invoke() -> None:
    """Register the stand-in, unless invoke is already imported or is not installed (then
    paramiko imports or misses it exactly as before)."""
    with _LOCK:
        if "invoke" in sys.modules:
            return
        try:
            spec = importlib.util.find_spec("invoke")
        except (ImportError, ValueError):
            return
        if spec is None:
            return
        stand_in = _Deferred("invoke")
        stand_in.__spec__ = spec
        sys.modules["invoke"] = stand_in


def _load(stand_in: _Deferred) -> types.ModuleType:
    """The real module, imported once (under a lock: hosts resolve their configs in threads);
    its names are copied into the stand-in, so paramiko's reference answers directly after."""
    with _LOCK:
        name = stand_in.__name__
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
            try:
                real = importlib.import_module(name)
            except BaseException:
                sys.modules[name] = stand_in      # a later use tries again, as paramiko would
                raise
            vars(stand_in).update(vars(real))
        return importlib.import_module(name)
