"""The spellings of Ansible content that mean the same task: fully qualified module names,
`k=v` free-form arguments and free-form `command:`/`shell:` strings.

Real roles write `ansible.builtin.file: path=/etc/x mode=0600`; harden's loader wants
`file: {path: /etc/x, mode: "0600"}`. Normalising here keeps the loader and the modules on one
form, and a spelling harden cannot honour is refused with its file and line.
"""

from __future__ import annotations

from harden.errors import InputError

# Collections whose modules harden implements under the short name (the module must exist too).
COLLECTION_PREFIXES = ("ansible.builtin.", "ansible.legacy.", "ansible.posix.",
                       "community.general.")
# Modules whose free-form string is the command itself (Ansible's `_raw_params`).
FREE_FORM_MODULES = ("command", "shell")
# Words of a free-form command that are arguments, not part of the command (Ansible's list).
COMMAND_WORDS = ("creates", "removes", "chdir")


# Ansible's aliases of module arguments (the module's own name for them on the right).
_PATH_ALIASES = {"dest": "path", "destfile": "path", "name": "path"}
ARG_ALIASES = {
    "lineinfile": _PATH_ALIASES, "blockinfile": _PATH_ALIASES, "replace": _PATH_ALIASES,
    "stat": {"dest": "path", "name": "path"}, "file": {"dest": "path", "name": "path"},
    "assert": {"msg": "fail_msg"},
}
# Task-list keywords that are not modules, also written with their collection's name.
STRUCTURE_KEYS = ("import_tasks", "include_tasks", "import_role", "include_role",
                  "import_playbook")


def structure_key(key) -> str:
    """`ansible.builtin.include_tasks` → `include_tasks`; anything else unchanged."""
    if isinstance(key, str):
        for prefix in ("ansible.builtin.", "ansible.legacy."):
            if key.startswith(prefix) and key[len(prefix):] in STRUCTURE_KEYS:
                return key[len(prefix):]
    return key


def canonical_arguments(module: str, args):
    """Arguments with Ansible's aliases renamed to the module's own names (lines kept); an
    alias given next to its argument is left for the module to refuse as unknown."""
    aliases = ARG_ALIASES.get(module, {})
    if not isinstance(args, dict) or not any(k in aliases for k in args):
        return args
    renamed = {aliases.get(k, k) if aliases.get(k, k) not in args else k: v
               for k, v in args.items()}
    out = type(args)(renamed.items()) if type(args) is not dict else dict(renamed)
    if hasattr(args, "key_lines"):
        out.line = args.line
        out.key_lines = {(aliases.get(k, k) if aliases.get(k, k) not in args else k): line
                         for k, line in args.key_lines.items()}
    return out


def short_module_name(key: str, known) -> str:
    """`ansible.builtin.file` → `file` when harden has `file`; anything else unchanged."""
    for prefix in COLLECTION_PREFIXES:
        if key.startswith(prefix) and key[len(prefix):] in known:
            return key[len(prefix):]
    return key


def module_arguments(module: str, value, path: str, line: int):
    """The argument mapping a task's module value stands for.

    A string is `k=v` pairs (quoting as in a shell), or, for command/shell, the command with
    optional leading/trailing `creates=`/`removes=`/`chdir=` words."""
    if not isinstance(value, str):
        return value
    if module in FREE_FORM_MODULES:
        return _free_form_command(value, path, line)
    if module == "meta":
        return {"free_form": value.strip()}         # `meta: flush_handlers`
    if module == "include_vars" and "=" not in value:
        return {"file": value.strip()}              # `include_vars: vars/main.yml`
    return _key_values(value, path, line)


def split_words(text: str) -> list[tuple[int, int]]:
    """Where each word of a free-form argument string starts and ends. Like Ansible's
    splitter: spaces inside quotes or inside a Jinja `{{ }}` / `{% %}` do not split."""
    spans, start, quote, depth, i = [], None, "", 0, 0
    while i < len(text):
        pair = text[i:i + 2]
        char = text[i]
        if not quote and pair in ("{{", "{%"):
            depth, i = depth + 1, i + 2
            start = i - 2 if start is None else start
            continue
        if not quote and depth and pair in ("}}", "%}"):
            depth, i = depth - 1, i + 2
            continue
        if char in "'\"" and not depth:
            quote = "" if quote == char else (quote or char)
        if char.isspace() and not quote and not depth:
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
        i += 1
    if quote or depth:
        raise ValueError("an unclosed quote or Jinja expression")
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _key_values(text: str, path: str, line: int) -> dict:
    try:
        spans = split_words(text)
    except ValueError as exc:
        raise InputError(f"cannot split the arguments {text!r}: {exc}", path, line) from None
    out = {}
    for start, end in spans:
        word = text[start:end]
        key, sep, val = word.partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"argument {word!r} is not key=value (free-form text is only "
                             f"accepted by {', '.join(FREE_FORM_MODULES)})", path, line)
        out[key] = _unquote(val)
    return out


def _free_form_command(text: str, path: str, line: int) -> dict:
    """Ansible keeps the command text as written and peels off its own k=v words (wherever
    they stand, as Ansible does)."""
    try:
        spans = split_words(text)
    except ValueError as exc:
        raise InputError(f"cannot split the command {text!r}: {exc}", path, line) from None
    out: dict = {}
    kept = []
    for start, end in spans:
        key, sep, val = text[start:end].partition("=")
        if sep and key in COMMAND_WORDS:
            out[key] = _unquote(val)
        else:
            kept.append((start, end))
    if not kept:
        raise InputError("a free-form command is empty", path, line)
    out["cmd"] = " ".join(text[s:e] for s, e in kept)
    return out
