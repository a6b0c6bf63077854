"""One writer per node: the lock `apply`, `rollback` and `prune` take before their first write.

Two runs writing one node at once lose changes (each plans on facts the other is about to
change, and a rollback of one erases the other's work), so every command that writes takes the
node's lock first and holds it until its node record is committed.

The lock is a symlink, `/var/lib/harden/lock`, whose target names the holder: created with one
`ln -s` (atomic: of two runs exactly one creates it), read with one `readlink` (no half-written
holder to see), removed only by its holder. The target is `harden-lock RUN SUBJECT CONTROLLER
PID STARTED COMMAND`: the run holding it, the run it works on (its own for `apply`, the run being
undone for `rollback`), the controller's host name and process, and when it was taken.

A run that dies keeps its lock (SIGKILL, a lost connection, Ctrl-C after changes were written):
the node then holds changes nobody committed, and the next run must not plan on top of them
unknowingly. Such a lock is taken over only on request and only from a holder that is provably
dead (`dead_reason`): its run is recorded in this controller's journal as finished, resolved or
interrupted, or it was taken on this controller more than `STALE_AFTER` seconds ago and its
process is gone. `harden rollback` of the very run that holds it takes it over on the same proof,
without `--break-lock`: undoing that run is what ends it.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import time
from dataclasses import dataclass

from harden.errors import HostError
from harden.ssh.session import Session

STALE_AFTER = 900.0      # seconds: longer than any health wait of one host (300 s by default)
_TAG = "harden-lock"
_MARK = "@@harden-lock "
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a node's lock."""

    run_id: str
    subject: str             # the run it works on: its own id for apply, the undone run's
    controller: str
    pid: int
    started: float
    command: str

    def target(self) -> str:
        return " ".join([_TAG, self.run_id, self.subject, self.controller, str(self.pid),
                         f"{self.started:.0f}", self.command])

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        parts = text.split(" ")
        if len(parts) != 7 or parts[0] != _TAG or not parts[4].isdigit() \
                or not parts[5].isdigit():
            return None
        return cls(parts[1], parts[2], parts[3], int(parts[4]), float(parts[5]), parts[6])

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        what = self.command if self.subject == self.run_id else \
            f"{self.command} of {self.subject}"
        return (f"run {self.run_id} ({what}) from {self.controller} pid {self.pid}, "
                f"since {since}")


def controller_name() -> str:
    """This machine's name as a lock names it (no spaces: the target is space-separated)."""
    return _SAFE.sub("_", socket.gethostname()) or "unknown"


def holder_for(run_id: str, command: str, subject: str | None = None) -> Holder:
    return Holder(run_id, subject or run_id, controller_name(), os.getpid(),
                  float(int(time.time())), command)


class NodeLocked(HostError):
    """Another run holds the node's lock; nothing was written."""

    kind = "locked"

    def __init__(self, host: str, message: str, holder: Holder | None = None):
        self.holder = holder
        super().__init__(host, message)


# --- node side -----------------------------------------------------------------------------

def acquire_script(holder: Holder, lock: str) -> str:
    """Create the lock unless it exists; print `taken`, `ours` or `held TARGET`. `ln -sT`
    never follows or writes into whatever is in the lock's place."""
    return (f"L={shlex.quote(lock)}; T={shlex.quote(holder.target())}\n"
            # root failing to make the lock's directory: say why (another user: see below)
            "mkdir -p -- \"$(dirname -- \"$L\")\" || [ \"$(id -u)\" != 0 ] || exit\n"
            f"if ln -sT -- \"$T\" \"$L\" 2>/dev/null; then echo '{_MARK}taken'; exit 0; fi\n"
            # nothing there, yet not created: this user may not write (or see) the lock's dir
            "if [ \"$(id -u)\" != 0 ] && [ ! -L \"$L\" ] && [ ! -e \"$L\" ]; then "
            f"printf '%s\\n' \"{_MARK}denied $(id -un)\"; exit 0; fi\n"
            "c=$(readlink -- \"$L\" 2>/dev/null) || c='(not a symlink)'\n"
            f"if [ \"$c\" = \"$T\" ]; then echo '{_MARK}ours'; exit 0; fi\n"
            f"printf '%s\\n' \"{_MARK}held $c\"\n")


def release_script(holder: Holder, lock: str) -> str:
    """Remove the lock if (and only if) this holder holds it."""
    return (f"L={shlex.quote(lock)}; T={shlex.quote(holder.target())}\n"
            "if [ \"$(readlink -- \"$L\" 2>/dev/null)\" = \"$T\" ]; then rm -f -- \"$L\"; "
            f"echo '{_MARK}released'; fi\n:\n")


def released(output: str) -> bool:
    """Whether a node's output says a release script removed the lock."""
    return f"{_MARK}released" in output.splitlines()


def break_script(dead: Holder, holder: Holder, lock: str) -> str:
    """Remove the dead holder's lock if it is still that one, then take it as `holder` (a third
    run that got in between wins, and is reported as the holder)."""
    return (f"L={shlex.quote(lock)}; D={shlex.quote(dead.target())}\n"
            "if [ \"$(readlink -- \"$L\" 2>/dev/null)\" = \"$D\" ]; then rm -f -- \"$L\"; fi\n"
            + acquire_script(holder, lock))


def _answer(host: str, result, what: str) -> tuple[str, str]:
    if result.rc != 0:
        raise HostError(host, f"{what} the node lock failed (exit {result.rc}): "
                              f"{result.stderr.decode(errors='replace').strip()[-300:]}")
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith(_MARK):
            state, _, rest = line[len(_MARK):].partition(" ")
            return state, rest
    raise HostError(host, f"{what} the node lock: no answer from the node")


# --- controller side -----------------------------------------------------------------------

def dead_reason(other: Holder, journal=None, now: float | None = None,
                here: str | None = None) -> str | None:
    """Why `other` provably no longer runs, or None when that cannot be proved."""
    run = journal.run_state(other.run_id) if journal is not None else None
    if run is not None:
        if run["resolved"]:
            return "its run was resolved (harden runs --resolve)"
        if run["finished"] is not None:
            return "its run finished without releasing it (connection lost?)"
        if run["interrupted"]:
            return "its run is recorded as interrupted"
        return None                                   # still running here
    now = time.time() if now is None else now
    if (here or controller_name()) == other.controller and now - other.started > STALE_AFTER \
            and not _alive(other.pid):
        return (f"taken on this controller more than {STALE_AFTER / 60:.0f} min ago by a "
                f"process that is gone")
    return None


def take(session: Session, host: str, holder: Holder, lock: str, *, become=True,
         break_lock: bool = False, journal=None, take_over_subject: str | None = None
         ) -> str | None:
    """Hold the node's lock as `holder`; NodeLocked when another run holds it. Returns a note
    when a dead holder's lock was taken over (`--break-lock`, or a rollback of the very run that
    holds it: `take_over_subject`), so that it is never done silently."""
    return take_then(session, host, holder, lock, "", become=become, break_lock=break_lock,
                     journal=journal, take_over_subject=take_over_subject)[0]


def take_then(session: Session, host: str, holder: Holder, lock: str, then: str, *,
              become=True, break_lock: bool = False, journal=None,
              take_over_subject: str | None = None) -> tuple[str | None, str | None]:
    """`take`, and in the same exec, once the lock is this run's, the script `then` (an apply
    gathers its first play's facts so: one exec fewer per host). Returns take's note and the
    output of `then`, or None when `then` did not run (the lock had to be taken over)."""
    first = acquire_script(holder, lock)
    if then:
        first = _then_script(first, then)
    result = session.run("sh -s", become=become, stdin=first.encode())
    state, text = _answer(host, result, "taking")
    if state in ("taken", "ours"):
        rest = result.stdout.decode(errors="replace").partition(f"{_MARK}{state}\n")[2]
        return None, rest if then else None
    if state == "denied":
        raise HostError(host, f"cannot take the node lock {lock}: permission denied as user "
                              f"{text}; add `become: true` to the play or task")
    other = Holder.parse(text)
    if other is None:
        raise NodeLocked(host, f"{lock} exists but is not a harden lock ({text}); nothing "
                               f"written: remove it on the node once you know what it is")
    reason = dead_reason(other, journal)
    own_run = take_over_subject is not None and other.subject == take_over_subject
    if reason is None or not (break_lock or own_run):
        raise NodeLocked(host, _refusal(other, reason, break_lock, lock), other)
    state, text = _answer(host, session.run("sh -s", become=become,
                                            stdin=break_script(other, holder, lock).encode()),
                          "breaking")
    if state not in ("taken", "ours"):
        raise NodeLocked(host, f"locked by {text} (taken between two steps); nothing written",
                         Holder.parse(text))
    return f"took over the lock of {other.describe()}: {reason}", None


def _then_script(acquire: str, then: str) -> str:
    """The acquire script in a subshell, its one answer line printed, and `then` run only when
    that answer says the lock is this run's; `then`'s exit status never reads as the lock's,
    the acquire script's does (a failed mkdir is "taking the node lock failed", with why)."""
    return (f"hl_answer=$(\n{acquire})\nhl_rc=$?\nprintf '%s\\n' \"$hl_answer\"\n"
            f"case $hl_answer in '{_MARK}taken'|'{_MARK}ours') ;; *) exit $hl_rc;; esac\n"
            f"(\n{then}\n) || :\n")


def _refusal(other: Holder, reason: str | None, break_lock: bool, lock: str) -> str:
    base = f"locked by {other.describe()}; nothing written"
    if reason is not None:
        return (f"{base}. That run is dead ({reason}): finish it with `harden rollback "
                f"{other.subject}`, or close it with `harden runs --resolve {other.subject}` "
                f"and take the lock over with --break-lock")
    if break_lock:
        return (f"{base}. --break-lock refused: its holder cannot be proved dead (not recorded "
                f"here as finished or interrupted, and not a process of this controller gone "
                f"for over {STALE_AFTER / 60:.0f} min); if you know it is, remove {lock} on "
                f"the node")
    return f"{base}. Wait for it to finish"


def release(session: Session, holder: Holder, lock: str, become=True) -> bool:
    """Give the lock back; False when this holder did not hold it (any more)."""
    result = session.run("sh -s", become=become, stdin=release_script(holder, lock).encode())
    return result.rc == 0 and released(result.stdout.decode(errors="replace"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
