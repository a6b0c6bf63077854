"""paramiko is imported without invoke (harden.ssh.deferred_invoke), and an ssh config's
`Match exec` read by paramiko (no ssh client installed) still runs its command through invoke.

Each case runs in a fresh interpreter: whether invoke is loaded depends on what was imported
before, and the test process has imported plenty."""

import json
import subprocess
import sys


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_the_paramiko_transport_leaves_invoke_unloaded():
    seen = _run("import json, sys\n"
                "import harden.ssh.paramiko_session, harden.ssh.certs\n"
                "print(json.dumps({'stand_in': type(sys.modules['invoke']).__name__,\n"
                "                  'loaded': sorted(m for m in sys.modules\n"
                "                                   if m.startswith('invoke.'))}))")
    assert seen == {"stand_in": "_Deferred", "loaded": []}


def test_a_match_exec_read_by_paramiko_runs_its_command(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "config"
    config.write_text(f'Match exec "touch {marker}"\n  User alice\n'
                      'Match exec "false"\n  Port 2200\n'
                      'Host *\n  HostName 127.0.0.9\n')
    seen = _run("import json, sys\n"
                "import harden.ssh.paramiko_session\n"
                "from harden.ssh import sshconfig\n"
                "sshconfig.ssh_client = lambda: None      # no ssh: paramiko reads the config\n"
                f"found = sshconfig.resolve('n1', 'n1', config_file={str(config)!r})\n"
                "print(json.dumps({'source': found.source, 'user': found.get('user'),\n"
                "                  'port': found.get('port'), 'host': found.get('hostname'),\n"
                "                  'invoke': type(sys.modules['invoke']).__name__}))")
    assert seen == {"source": "paramiko", "user": "alice", "port": None, "host": "127.0.0.9",
                    "invoke": "module"}
    assert marker.exists()


def test_an_invoke_imported_before_is_left_as_it_is():
    seen = _run("import json, sys, invoke\n"
                "real = sys.modules['invoke']\n"
                "from harden.ssh.deferred_invoke import defer_invoke\n"
                "defer_invoke()\n"
                "import paramiko.config\n"
                "print(json.dumps({'same': sys.modules['invoke'] is real is paramiko.config.invoke}))")
    assert seen == {"same": True}
