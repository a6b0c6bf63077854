"""`shell`: run a command through the node's `sh`, as Ansible's shell module does: pipes,
redirections, `&&`, variables and globbing all work. `command` never uses a shell."""

from __future__ import annotations

from harden.apply.modules.command import CommandModule


class ShellModule(CommandModule):
    name = "shell"

    def script(self, args: dict) -> str:
        if args["argv"]:
            return super().script(args)
        return f"(\n{args['cmd']}\n)"


MODULE = ShellModule()
