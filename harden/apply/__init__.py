"""The apply side: playbooks, templating, facts, modules, the per-host runner, the health gate, manifest editing and rollback."""
