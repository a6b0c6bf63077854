"""Before the first change of an apply: every host of the run (every play, every serial batch) is
connected, its host key checked, sudo tried, and its node lock taken. One host that fails any of
these stops the run before anything is written anywhere: a rollout must not change cp1 and only
then find that cp3's host key changed or that another run holds cp2.

The lock's exec also gathers the first play's facts for the hosts of its first batch (once the
lock is this run's, same identity): the play starts right after, and that exec is one fewer per
host. Gathering writes nothing, so a host failing elsewhere still leaves every node unchanged.

At the end of the run the locks are given back (after every host's node record is committed or
its rollback done). An interrupted run keeps them: its nodes hold changes nobody committed (see
harden.runs.lock).
"""

from __future__ import annotations

from harden.apply.host_state import BECOME_RANK
from harden.node.paths import lock_path
from harden.runs.lock import NodeLocked, release, take_then
from harden.ssh.parallel import for_each_host

_UNREACHABLE = ("unreachable", "auth failed", "host key mismatch", "host key unknown")


def lock_become(plays: list, host: str):
    """The identity the lock is taken with: the most privileged one any of the host's plays
    writes with (the lock lives beside the backups, which that identity writes)."""
    best = False
    for play, hosts in plays:
        if host not in {h.name for h in hosts}:
            continue
        for task in [None, *play.tasks, *play.handlers]:
            become = play.become if task is None or task.become is None else task.become
            if BECOME_RANK[become] > BECOME_RANK[best]:
                best = become
    return best


def preflight(runner, plays: list, specs: dict) -> bool:
    """Connect and lock every host of the run; False (and every lock taken given back) when one
    host fails, each failure reported on its host."""
    hosts = list({h.name: h for _, play_hosts in plays for h in play_hosts}.values())
    lock = lock_path(runner.options.backup_root)

    def one(host) -> str | None:
        session = runner.session(host.name, specs[host.name])
        become = lock_become(plays, host.name)
        first = runner.first_gather(host.name, specs[host.name], become)
        if first:
            runner.step(host.name, "lock, gathering facts")
        note, gathered = take_then(session, host.name, runner.holder, lock,
                                   first[2] if first else "", become=become,
                                   break_lock=runner.options.break_lock, journal=runner.journal)
        runner.locked[host.name] = become
        if first and gathered is not None:
            runner.keep_prefetched(host.name, first[0], first[1], gathered)
        # Journalled now, so that `harden rollback` of this run, killed before the host's
        # turn, still visits the host and gives its lock back.
        runner.journal.host(runner.run_id, host.name, "pending")
        return note

    outcomes = for_each_host(hosts, one, runner.options.forks)
    failed = {name: o for name, o in outcomes.items() if not o.ok}
    for name, outcome in outcomes.items():
        if outcome.ok and outcome.value:
            runner.out.warning(name, outcome.value)
    if not failed:
        return True
    for name, outcome in failed.items():
        _report(runner, name, outcome.error, outcome.message)
    release_locks(runner)
    names = ", ".join(failed)
    runner.result.stopped = f"preflight failed on {names}: nothing was changed on any host"
    runner.out.stopped(runner.result.stopped)
    return False


def _report(runner, name: str, error, message: str) -> None:
    summary = runner.summary(name)
    kind = getattr(error, "kind", "")
    if kind in _UNREACHABLE:
        summary.unreachable += 1
        status = "unreachable"
    else:
        summary.failed += 1
        status = "refused" if isinstance(error, NodeLocked) else "failed"
    runner.out.warning(name, message)
    runner.journal.host(runner.run_id, name, status, summary.as_dict(), message)


def release_locks(runner) -> None:
    """Give back every lock this run holds (in parallel); a host that cannot be reached keeps
    it (reported: the next run there names this one as the holder). A host locked but never
    started (a serial rollout stopped before it) is journalled as such."""
    lock = lock_path(runner.options.backup_root)
    locked = dict(runner.locked)
    for name in locked:
        if name not in runner.result.hosts:
            runner.journal.host(runner.run_id, name, "not started")

    def one(host) -> None:
        runner.step(host.name, "unlocking")
        release(runner.session(host.name, None), runner.holder, lock, locked[host.name])

    hosts = [runner.inventory.hosts[name] for name in locked]
    for name, outcome in for_each_host(hosts, one, runner.options.forks).items():
        if not outcome.ok:
            runner.out.warning(name, f"could not release the node lock {lock}: "
                                     f"{outcome.message}")
    runner.locked.clear()
