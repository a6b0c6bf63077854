"""Line-level editing of static-pod manifests (the YAML primitives are in
harden.kubeadm.yaml_text, shared with the ClusterConfiguration model)."""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harden.errors import InputError
from harden.kubeadm.yaml_text import YamlText, _construct, _entry, _last_line  # noqa: F401


# --- static-pod manifests --------------------------------------------------------------------

@dataclass
class FlagEntry:
    """One occurrence of a flag in a container's command/args list."""

    name: str
    value: str | None            # None: a bare `--flag`
    items: list[Node]            # one node (`--x=y`) or two (`--x`, `y`)


@dataclass(frozen=True)
class Mount:
    name: str
    mount_path: str
    read_only: bool


class Manifest(YamlText):
    """A static-pod manifest: flags, volumes, mounts and annotations of its containers."""

    def __init__(self, text: str, path: str = ""):
        super().__init__(text, path)
        kind = self.value(["kind"])
        if kind != "Pod":
            raise InputError(f"not a Pod manifest (kind: {kind!r})", path, 1)

    # --- containers and flags -------------------------------------------------------------
    def _container(self, name: str | None) -> MappingNode:
        containers = self.node(["spec", "containers"])
        if not isinstance(containers, SequenceNode) or not containers.value:
            raise self._error("manifest has no spec.containers", self._root)
        if name is None:
            return containers.value[0]
        for item in containers.value:
            entry = _entry(item, "name")
            if entry and entry[1].value == name:
                return item
        names = [_entry(i, "name")[1].value for i in containers.value if _entry(i, "name")]
        raise self._error(f"no container '{name}'; containers: {', '.join(names)}", containers)

    def _flag_lists(self, container: str | None) -> list[SequenceNode]:
        node = self._container(container)
        out = []
        for key in ("command", "args"):
            entry = _entry(node, key)
            if entry is not None:
                seq = entry[1]
                if not isinstance(seq, SequenceNode):
                    raise self._error(f"'{key}' is not a list", seq)
                if seq.flow_style:
                    raise self._error(f"'{key}' is an inline [..] list; only block lists "
                                      "(one '- ' item per line, as kubeadm writes) are edited",
                                      seq)
                out.append(seq)
        if not out:
            raise self._error("container has neither command: nor args:", node)
        return out

    def argv(self, container: str | None = None) -> list[str]:
        """command + args as the container runtime would start them."""
        return [str(_construct(i)) for seq in self._flag_lists(container) for i in seq.value]

    def flag_entries(self, container: str | None = None) -> list[FlagEntry]:
        entries: list[FlagEntry] = []
        for seq in self._flag_lists(container):
            items = seq.value
            i = 0
            while i < len(items):
                text = str(_construct(items[i]))
                if text.startswith("-") and text != "-":
                    name, eq, value = text.lstrip("-").partition("=")
                    if eq:
                        entries.append(FlagEntry(name, value, [items[i]]))
                    elif i + 1 < len(items) and not str(_construct(items[i + 1])).startswith("-"):
                        entries.append(FlagEntry(name, str(_construct(items[i + 1])),
                                                 items[i:i + 2]))
                        i += 1
                    else:
                        entries.append(FlagEntry(name, None, [items[i]]))
                i += 1
        return entries

    def flags(self, container: str | None = None) -> dict[str, str | None]:
        """Effective flag values (last occurrence wins, as for pflag scalars)."""
        return {e.name: e.value for e in self.flag_entries(container)}

    def _flag_sequence(self, container: str | None) -> SequenceNode:
        """Where new flags go: the list that already holds flags (args: before command:)."""
        lists = self._flag_lists(container)
        for seq in reversed(lists):
            if any(str(_construct(i)).startswith("-") for i in seq.value):
                return seq
        return lists[-1]

    def set_flag(self, name: str, value: str, container: str | None = None) -> bool:
        """Make `--name=value` the only entry for this flag. True if the text changed."""
        wanted = f"--{name}={value}"
        found = [e for e in self.flag_entries(container) if e.name == name]
        if not found:
            seq = self._flag_sequence(container)
            self._insert_flag(seq, wanted)
            return True
        first = found[0]
        if len(found) == 1 and len(first.items) == 1 and \
                str(_construct(first.items[0])) == wanted:
            return False
        self.delete_items([i for e in found[1:] for i in e.items] + first.items[1:])
        first = [e for e in self.flag_entries(container) if e.name == name][0]
        self.replace_item(first.items[0], wanted)
        return True

    def _insert_flag(self, seq: SequenceNode, wanted: str) -> None:
        def key(item):
            text = str(item)
            return text if text.startswith("-") else ""    # the binary stays first
        self.insert_item(seq, wanted, sort_key=key)

    def remove_flag(self, name: str, container: str | None = None) -> bool:
        found = [e for e in self.flag_entries(container) if e.name == name]
        if not found:
            return False
        self.delete_items([i for e in found for i in e.items])
        return True

    def list_flag(self, name: str, container: str | None = None, sep: str = ",") -> list[str]:
        """Elements of a list flag over all its occurrences (repeats append, as in pflag)."""
        out: list[str] = []
        for entry in self.flag_entries(container):
            if entry.name == name and entry.value:
                for element in (e.strip() for e in entry.value.split(sep)):
                    if element and element not in out:
                        out.append(element)
        return out

    def edit_list_flag(self, name: str, add: list[str] = (), remove: list[str] = (),
                       container: str | None = None, sep: str = ",") -> bool:
        """Exact-element, order-preserving merge into one entry; an emptied flag is removed."""
        current = self.list_flag(name, container, sep)
        wanted = [e for e in current if e not in remove]
        wanted += [e for e in add if e not in wanted]
        if not wanted:
            return self.remove_flag(name, container)
        if wanted == current and len([e for e in self.flag_entries(container)
                                      if e.name == name]) == 1:
            entry = [e for e in self.flag_entries(container) if e.name == name][0]
            if len(entry.items) == 1 and entry.value == sep.join(current):
                return False
        return self.set_flag(name, sep.join(wanted), container)

    # --- volumes ----------------------------------------------------------------------------
    def mounts(self, container: str | None = None) -> list[Mount]:
        node = _entry(self._container(container), "volumeMounts")
        items = _construct(node[1]) if node else []
        return [Mount(m.get("name", ""), m.get("mountPath", ""), bool(m.get("readOnly")))
                for m in items or []]

    def volumes(self) -> dict[str, dict]:
        """name → hostPath mapping ({path, type}); non-hostPath volumes map to {}."""
        items = self.value(["spec", "volumes"]) or []
        return {v.get("name", ""): dict(v.get("hostPath") or {}) for v in items}

    def ensure_volume(self, name: str, host_path: str, mount_path: str, read_only: bool,
                      path_type: str | None, container: str | None = None) -> bool:
        """hostPath volume + mount in kubeadm's form; replaced when it differs."""
        volume = {"hostPath": {"path": host_path, **({"type": path_type} if path_type else {})},
                  "name": name}
        mount = {"mountPath": mount_path, "name": name, **({"readOnly": True} if read_only
                                                           else {})}
        for other in self.mounts(container):
            if other.mount_path.rstrip("/") == mount_path.rstrip("/") and other.name != name:
                raise self._error(f"mountPath {mount_path} is already used by volume "
                                  f"'{other.name}'", self._container(container))
        changed = self._ensure_item(self._container(container), "volumeMounts", mount, name)
        spec = self.node(["spec"])
        return self._ensure_item(spec, "volumes", volume, name) or changed

    def _ensure_item(self, parent: MappingNode, key: str, item: dict, name: str) -> bool:
        entry = _entry(parent, key)
        if entry is None:
            self._insert_entry(parent, key, [item])
            return True
        seq = entry[1]
        if not isinstance(seq, SequenceNode) or seq.flow_style and seq.value:
            raise self._error(f"'{key}' is not a block list", seq)
        if not seq.value:
            self._replace_entry(entry[0], seq, key, [item])
            return True
        for node in seq.value:
            current = _construct(node)
            if isinstance(current, dict) and current.get("name") == name:
                if current == item:
                    return False
                self.replace_item(node, item)
                return True
        self.insert_item(seq, item, sort_key=lambda v: v.get("name") if isinstance(v, dict)
                         else None)
        return True

    def remove_volume(self, name: str, container: str | None = None) -> bool:
        changed = False
        for key in ("volumeMounts", "volumes"):
            parent = self._container(container) if key == "volumeMounts" else self.node(["spec"])
            entry = _entry(parent, key)
            if entry is None or not isinstance(entry[1], SequenceNode):
                continue
            doomed = [n for n in entry[1].value
                      if isinstance(_construct(n), dict) and _construct(n).get("name") == name]
            if not doomed:
                continue
            if len(doomed) == len(entry[1].value):
                self._splice(entry[0].start_mark.line, _last_line(entry[1]) + 1, [])
            else:
                self.delete_items(doomed)
            changed = True
        return changed

    def host_path_of(self, container_path: str, container: str | None = None,
                     extra_mounts: list[tuple[str, str]] = ()) -> str | None:
        """Which host path the container sees at container_path (None: not mounted)."""
        volumes = self.volumes()
        candidates = [(m.mount_path, volumes.get(m.name, {}).get("path"))
                      for m in self.mounts(container)] + list(extra_mounts)
        best = None
        for mount_path, host in candidates:
            root = mount_path.rstrip("/") or "/"
            if host and (container_path == root or container_path.startswith(root + "/")):
                if best is None or len(root) > len(best[0]):
                    best = (root, host)
        if best is None:
            return None
        rest = container_path[len(best[0]):]
        return best[1].rstrip("/") + rest if rest else best[1]

    # --- annotations and probes -------------------------------------------------------------
    def set_annotation(self, key: str, value: str) -> bool:
        metadata = self.node(["metadata"])
        if not isinstance(metadata, MappingNode):
            raise self._error("manifest has no metadata mapping", self._root)
        annotations = _entry(metadata, "annotations")
        if annotations is None or not isinstance(annotations[1], MappingNode) or \
                annotations[1].flow_style:
            current = _construct(annotations[1]) if annotations else None
            merged = dict(current or {})
            if merged.get(key) == value:
                return False
            merged[key] = value
            if annotations is None:
                self._insert_entry(metadata, "annotations", merged)
            else:
                self._replace_entry(annotations[0], annotations[1], "annotations", merged)
            return True
        return self.set(["metadata", "annotations", key], value)

    def annotation(self, key: str) -> str | None:
        annotations = self.value(["metadata", "annotations"]) or {}
        return annotations.get(key)

    def probes(self, container: str | None = None) -> dict[str, dict]:
        """startupProbe / livenessProbe / readinessProbe of the container, as data."""
        node = _construct(self._container(container))
        return {k: node[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")
                if isinstance(node.get(k), dict)}
