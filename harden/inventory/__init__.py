"""Ansible-format inventories (INI, YAML, group_vars/host_vars) and host patterns."""
