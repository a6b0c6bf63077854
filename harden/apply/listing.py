"""`--list-hosts`, `--list-tasks`, `--list-tags`, `--syntax-check`: what a run would touch,
from the inventory and the playbook alone (no host is contacted), in ansible-playbook's shape.
"""

from __future__ import annotations

from harden.apply.playbook import Playbook, task_selected


def list_hosts(playbook: Playbook, inventory, limit: str | None) -> str:
    lines = [f"playbook: {playbook.path}", ""]
    for index, play in enumerate(playbook.plays, 1):
        hosts = [h.name for h in play.select_hosts(inventory, limit)]
        lines.append(f"  play #{index} ({play.hosts}): {play.name}\tTAGS: "
                     f"[{','.join(play.tags)}]")
        lines.append(f"    pattern: ['{play.hosts}']")
        lines.append(f"    hosts ({len(hosts)}):")
        lines += [f"      {name}" for name in hosts]
        lines.append("")
    return "\n".join(lines)


def list_tasks(playbook: Playbook, tags: list[str] | None, skip_tags: list[str] | None) -> str:
    lines = [f"playbook: {playbook.path}", ""]
    for index, play in enumerate(playbook.plays, 1):
        lines.append(f"  play #{index} ({play.hosts}): {play.name}\tTAGS: "
                     f"[{','.join(play.tags)}]")
        lines.append("    tasks:")
        for task in play.tasks:
            if task_selected(task, play, tags, skip_tags):
                lines.append(f"      {task.name}\tTAGS: [{','.join(task.tags)}]")
        lines.append("")
    return "\n".join(lines)


def list_tags(playbook: Playbook) -> str:
    lines = [f"playbook: {playbook.path}", ""]
    for index, play in enumerate(playbook.plays, 1):
        tags = sorted(set(play.tags).union(*(t.tags for t in play.tasks)))
        lines.append(f"  play #{index} ({play.hosts}): {play.name}\tTAGS: "
                     f"[{','.join(play.tags)}]")
        lines.append(f"      TASK TAGS: [{', '.join(tags)}]")
        lines.append("")
    return "\n".join(lines)
