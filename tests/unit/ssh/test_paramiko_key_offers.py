"""Which keys the paramiko transport offers, and what a failed login says about the others:
passphrase-protected keys named as such (never an internal error), ssh-agent's copy of a key
file paramiko cannot use itself (passphrase-protected, FIDO, only a `.pub`), each key offered
once, and an unusable default FIDO key file kept to a note when something else was tried.
A small fake stands in for ssh-agent and for the server's answers."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from harden.errors import HostError
from harden.ssh import key_files, paramiko_session
from harden.ssh.common import AuthenticationFailed
from harden.ssh.paramiko_session import (PASSPHRASE, USE_OPENSSH, _Agent, _authenticate,
                                         _candidate_keys, _load_key,
                                         negotiation_message, unsupported_methods_message)
from harden.ssh.settings import Endpoint, Secret, _existing_key_files
from tests.unit.ssh.test_paramiko_unusable_keys import openssh_key_file

PASSWORD = b"correct horse"


class FakeAgentKey:
    """What paramiko.Agent hands out: a public key blob the agent signs for."""

    def __init__(self, blob: bytes):
        self.blob = blob
        self.public_blob = None

    def asbytes(self) -> bytes:
        return self.blob

    def get_name(self) -> str:
        try:
            return paramiko.Message(self.blob).get_text()
        except UnicodeDecodeError:
            return "?"

    def get_fingerprint(self) -> bytes:
        return self.blob[-16:]


class FakeAgent:
    held: list = []

    def get_keys(self):
        return tuple(self.held)

    def close(self):
        pass


class FakeTransport:
    """A server that accepts only the keys in `accepts` and no password; with `then`, a key
    is one step (AuthenticationMethods publickey,...) and `then` the methods still asked."""

    def __init__(self, accepts: set[bytes] = frozenset(), then: tuple = ()):
        self.accepts = accepts
        self.then = list(then)
        self.offered: list[bytes] = []
        self.authenticated = False

    def auth_publickey(self, _user, key):
        self.offered.append(key.asbytes())
        if key.asbytes() not in self.accepts:
            raise paramiko.AuthenticationException("denied")
        if self.then:
            return [self.then.pop(0)]
        self.authenticated = True
        return []

    def is_authenticated(self):
        return self.authenticated

    def auth_password(self, _user, password):
        if password != getattr(self, "password", None):
            raise paramiko.AuthenticationException("denied")
        if self.then:
            return [self.then.pop(0)]
        self.authenticated = True
        return []

    def auth_none(self, _user):
        raise paramiko.BadAuthenticationType("no", ["publickey", "password"])

    def is_active(self):
        return True


FAKE_SOCK = "/fake/agent.sock"           # what $SSH_AUTH_SOCK says: the fake agent


@pytest.fixture(autouse=True)
def agent(monkeypatch, tmp_path):
    """An empty fake ssh-agent and an empty home (no default key files)."""
    monkeypatch.setattr(FakeAgent, "held", [])
    real = paramiko_session._SocketAgent
    monkeypatch.setenv("SSH_AUTH_SOCK", FAKE_SOCK)
    monkeypatch.setattr(paramiko_session, "_SocketAgent",
                        lambda path: FakeAgent() if path == FAKE_SOCK else real(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    return FakeAgent


def hop(*key_files_: str, identities_only: bool = True, password: str | None = None):
    return Endpoint(name="n1", address="10.0.0.5", port=22, user="root",
                    key_files=tuple(key_files_), identities_only=identities_only,
                    default_keys=not key_files_,
                    password=Secret(password) if password is not None else None)


def offers(endpoint: Endpoint):
    notes: list[str] = []
    unusable: list[key_files.UnusableKey] = []
    found = [(label, key.asbytes()) for label, key in _candidate_keys(endpoint, notes, unusable)]
    return found, notes, unusable


def offered_as(endpoint: Endpoint):
    """(label, what the request carries: the certificate's type, else the key's) per offer."""
    return [(label, key.public_blob.key_type if key.public_blob else "plain")
            for label, key in _candidate_keys(endpoint, [], [])]


def plain_key_file(path) -> bytes:
    """An unencrypted Ed25519 key file at `path`; its public key blob."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    return public_blob(key)


def certified_passphrase_key(tmp_path, path):
    """A passphrase-protected key at `path` with `<path>-cert.pub` from a new CA; its public
    key blob (what ssh-agent holds after `ssh-add`) and the certificate's blob."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(path)],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "me", "-n", "root",
                    f"{path}.pub"], check=True)
    cert = path.with_name(path.name + "-cert.pub").read_text().split()[1]
    return key_files.public_key_of(str(path)), base64.b64decode(cert)


def encrypted(key, fmt) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt,
                             serialization.BestAvailableEncryption(PASSWORD))


def public_blob(key) -> bytes:
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH)
    return key_files.public_line_blob(line)


def write_pub(path, key) -> None:
    path.with_name(path.name + ".pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b" me@there\n")


ENCRYPTED = {
    "openssh": lambda: (ed25519.Ed25519PrivateKey.generate(),
                        serialization.PrivateFormat.OpenSSH),
    "pkcs8": lambda: (rsa.generate_private_key(65537, 2048), serialization.PrivateFormat.PKCS8),
    "traditional-rsa": lambda: (rsa.generate_private_key(65537, 2048),
                                serialization.PrivateFormat.TraditionalOpenSSL),
}


@pytest.mark.parametrize("kind", sorted(ENCRYPTED))
def test_a_passphrase_protected_key_is_named_as_such_not_an_internal_error(tmp_path, kind):
    key, fmt = ENCRYPTED[kind]()
    path = tmp_path / "id_key"
    path.write_bytes(encrypted(key, fmt))
    assert _load_key(str(path)) == (None, PASSPHRASE, None)
    with pytest.raises(AuthenticationFailed) as failed:
        _authenticate("n1", hop(str(path)), FakeTransport())
    assert failed.value.setting == "ansible_user"
    assert f"key {path} (passphrase-protected: paramiko cannot ask for the passphrase; " \
           "load the key into ssh-agent" in failed.value.message


@pytest.mark.parametrize("kind", sorted(ENCRYPTED))
def test_the_agent_copy_of_a_passphrase_protected_key_file_logs_in_with_identities_only(
        tmp_path, agent, kind):
    # the public key comes from the OpenSSH file itself, or from <key>.pub beside a PEM file
    key, fmt = ENCRYPTED[kind]()
    path = tmp_path / "id_key"
    path.write_bytes(encrypted(key, fmt))
    if kind != "openssh":
        write_pub(path, key)
    blob = public_blob(key)
    agent.held = [FakeAgentKey(b"another key"), FakeAgentKey(blob)]
    transport = FakeTransport(accepts={blob})
    _authenticate("n1", hop(str(path)), transport)
    assert transport.offered == [blob]


def test_a_fido_key_file_the_agent_does_not_hold_stays_unusable(tmp_path, agent):
    path = tmp_path / "id_sk"
    path.write_bytes(openssh_key_file("sk-ssh-ed25519@openssh.com"))
    agent.held = [FakeAgentKey(b"some other key")]
    found, notes, unusable = offers(hop(str(path)))
    assert found == [] and notes == []
    assert [key.path for key in unusable] == [str(path)]


def test_a_fido_key_file_is_offered_through_the_agent_copy(tmp_path, agent):
    path = tmp_path / "id_sk"
    path.write_bytes(openssh_key_file("sk-ssh-ed25519@openssh.com"))
    blob = key_files.public_key_of(str(path))
    agent.held = [FakeAgentKey(blob)]
    found, _notes, unusable = offers(hop(str(path)))
    assert found == [(f"key {path} (through ssh-agent)", blob)] and unusable == []


@pytest.mark.parametrize("named", ["missing-private", "the-pub-itself"])
def test_an_identity_file_that_is_only_a_public_key_finds_the_agent_key(tmp_path, agent, named):
    # a resident FIDO key loaded with `ssh-add -K` has no private key file, as ssh accepts
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "id_rk"
    write_pub(path, key)
    blob = public_blob(key)
    agent.held = [FakeAgentKey(blob)]
    named_path = str(path) if named == "missing-private" else str(path) + ".pub"
    found, notes, unusable = offers(hop(named_path))
    assert found == [(f"key {named_path} (through ssh-agent)", blob)]
    assert notes == [] and unusable == []


def test_an_identity_file_that_is_only_a_public_key_not_in_the_agent_says_so(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "id_rk"
    write_pub(path, key)
    found, notes, unusable = offers(hop(str(path) + ".pub"))
    assert found == [] and unusable == []
    assert notes == [f"key {path}.pub (only a public key, and ssh-agent holds no private key "
                     "for it)"]


def test_a_key_file_with_only_its_pub_beside_it_passes_the_inventory_check(tmp_path):
    path = tmp_path / "id_rk"
    write_pub(path, ed25519.Ed25519PrivateKey.generate())
    assert _existing_key_files("n1", [str(path)], "ansible_ssh_private_key_file") == (str(path),)
    with pytest.raises(HostError, match="does not exist"):
        _existing_key_files("n1", [str(tmp_path / "nothing")], "ansible_ssh_private_key_file")


def test_a_loadable_key_file_the_agent_also_holds_is_offered_once(tmp_path, agent):
    # MaxAuthTries counts each offer: the agent's copy of a key already offered is skipped
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "id_ed25519"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    blob = public_blob(key)
    agent.held = [FakeAgentKey(blob), FakeAgentKey(b"other")]
    found, _notes, _unusable = offers(hop(str(path), identities_only=False))
    assert found == [(f"key {path}", blob), ("agent key " + b"other".hex(), b"other")]


def test_a_default_key_file_the_agent_offered_already_is_not_offered_again(tmp_path, agent):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "home" / ".ssh" / "id_ed25519"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    blob = public_blob(key)
    agent.held = [FakeAgentKey(blob)]
    found, notes, unusable = offers(hop(identities_only=False))
    assert [b for _label, b in found] == [blob] and notes == [] and unusable == []


def test_holding_finds_only_the_agent_key_with_that_public_key(agent):
    agent.held = [FakeAgentKey(b"one"), FakeAgentKey(b"two")]
    keys = _Agent()
    assert keys.holding(b"three") is None
    assert keys.holding(None) is None
    assert keys.holding(b"two").asbytes() == b"two"


def test_holding_asks_the_agent_only_when_a_key_is_wanted(agent, monkeypatch):
    made = []
    monkeypatch.setattr(paramiko_session, "_SocketAgent", lambda _path: made.append(1) or agent())
    keys = _Agent()
    assert keys.holding(None) is None and made == []
    keys.close()


def default_fido_key(tmp_path):
    path = tmp_path / "home" / ".ssh" / "id_ed25519_sk"
    path.write_bytes(openssh_key_file("sk-ssh-ed25519@openssh.com"))
    return path


def test_an_unusable_default_fido_key_is_a_note_when_a_password_was_tried(tmp_path):
    # a wrong ansible_user or password must not read as "use the OpenSSH transport"
    path = default_fido_key(tmp_path)
    with pytest.raises(AuthenticationFailed) as failed:
        _authenticate("n1", hop(identities_only=False, password="pw"), FakeTransport())
    said = failed.value.message
    assert failed.value.setting == "ansible_user"
    assert said.startswith("root@10.0.0.5:22 refused authentication (tried password)")
    assert f"not offered: Key {path} is a FIDO security key" in said
    assert USE_OPENSSH not in said


def test_an_unusable_default_fido_key_is_the_cause_when_nothing_else_was_tried(tmp_path):
    path = default_fido_key(tmp_path)
    with pytest.raises(AuthenticationFailed) as failed:
        _authenticate("n1", hop(identities_only=False), FakeTransport())
    assert failed.value.setting == "harden_transport"
    assert f"Key {path} is a FIDO security key" in failed.value.message
    assert USE_OPENSSH in failed.value.message


def test_a_fido_key_named_in_the_inventory_is_the_cause_even_after_a_password(tmp_path):
    path = tmp_path / "id_sk"
    path.write_bytes(openssh_key_file("sk-ssh-ed25519@openssh.com"))
    with pytest.raises(AuthenticationFailed) as failed:
        _authenticate("n1", hop(str(path), password="pw"), FakeTransport())
    assert failed.value.setting == "harden_transport"
    assert failed.value.message.startswith("root@10.0.0.5:22 refused authentication "
                                           "(tried password)")
    assert USE_OPENSSH in failed.value.message


def test_every_message_that_suggests_the_openssh_transport_says_it_the_same_way():
    class Options:
        kex = ciphers = digests = key_types = ["x"]

    class Transport:
        def get_security_options(self):
            return Options()

    fido = key_files.UnusableKey("/k/id_sk", "sk-ssh-ed25519@openssh.com")
    endpoint = hop()
    for said in (negotiation_message(endpoint, Exception("x"), Transport()),
                 unsupported_methods_message(["hostbased"]),
                 paramiko_session.unusable_keys_message(endpoint, [], [fido])):
        assert USE_OPENSSH in said


def test_identities_only_with_no_key_named_tries_ssh_default_key_files(tmp_path):
    # `Host *` + `IdentitiesOnly yes` is common: ssh then still uses ~/.ssh/id_ed25519
    blob = plain_key_file(tmp_path / "home" / ".ssh" / "id_ed25519")
    found, notes, unusable = offers(hop(identities_only=True))
    assert found == [(f"key {tmp_path / 'home' / '.ssh' / 'id_ed25519'}", blob)]
    assert notes == [] and unusable == []


def test_default_key_files_are_not_tried_when_a_key_file_is_named(tmp_path, agent):
    # ssh -G lists its defaults only when no IdentityFile is named; each offer counts
    # against MaxAuthTries, and a password login may come after the keys
    plain_key_file(tmp_path / "home" / ".ssh" / "id_ed25519")
    named = plain_key_file(tmp_path / "id_named")
    agent.held = [FakeAgentKey(b"other")]
    found, _notes, _unusable = offers(hop(str(tmp_path / "id_named"), identities_only=False))
    assert [b for _label, b in found] == [named, b"other"]


needs_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")


@needs_keygen
@pytest.mark.parametrize("identities_only", [True, False])
def test_the_agent_copy_of_a_passphrase_key_is_offered_with_the_certificate_beside_it(
        tmp_path, agent, identities_only):
    # the usual certificate set-up: a passphrase key, ssh-add'ed, its -cert.pub beside it
    path = tmp_path / "id_cert"
    blob, cert = certified_passphrase_key(tmp_path, path)
    agent.held = [FakeAgentKey(blob), FakeAgentKey(cert)]     # ssh-add adds both
    ca = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "ca.pub")], check=True,
                        capture_output=True, text=True).stdout.split()[1]
    assert offered_as(hop(str(path), identities_only=identities_only)) == [
        (f"certificate {path}-cert.pub (id 'me', CA {ca})", "ssh-ed25519-cert-v01@openssh.com"),
        (f"key {path} (through ssh-agent)", "plain"),
    ]                    # the agent's own copy of the certificate is not offered a second time


@needs_keygen
def test_a_certificate_the_agent_offered_is_not_offered_again_with_a_default_key(
        tmp_path, agent):
    path = tmp_path / "home" / ".ssh" / "id_ed25519"
    blob, cert = certified_passphrase_key(tmp_path, path)
    agent.held = [FakeAgentKey(blob), FakeAgentKey(cert)]
    found, notes, unusable = offers(hop(identities_only=False))
    assert [b for _label, b in found] == [blob, cert] and notes == [] and unusable == []


@needs_keygen
def test_an_agent_rsa_certificate_is_offered_as_a_certificate_once(tmp_path, agent):
    # paramiko reads an RSA certificate's inner key, whose plain blob stood for it: the
    # agent's certificate was taken for its plain key (never offered) or sent with that blob
    keygen_rsa = ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"]
    subprocess.run([*keygen_rsa, str(tmp_path / "rsa")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "me", "-n", "root",
                    str(tmp_path / "rsa.pub")], check=True)
    plain = base64.b64decode((tmp_path / "rsa.pub").read_text().split()[1])
    cert = base64.b64decode((tmp_path / "rsa-cert.pub").read_text().split()[1])
    agent.held = [paramiko.AgentKey(None, plain), paramiko.AgentKey(None, cert)]
    assert [kind for _label, kind in offered_as(hop(identities_only=False))] == [
        "plain", "ssh-rsa-cert-v01@openssh.com"]


@needs_keygen
def test_a_certificate_file_replaces_the_one_beside_the_key_as_in_ssh(tmp_path, agent):
    # ssh loads <key>-cert.pub only when no CertificateFile is configured
    path = tmp_path / "id_cert"
    blob, _cert = certified_passphrase_key(tmp_path, path)
    agent.held = [FakeAgentKey(blob)]
    elsewhere = tmp_path / "other-cert.pub"
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "other", "-n", "root",
                    str(path) + ".pub"], check=True)
    path.with_name(path.name + "-cert.pub").rename(elsewhere)
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "beside", "-n", "root",
                    str(path) + ".pub"], check=True)
    endpoint = Endpoint(name="n1", address="10.0.0.5", port=22, user="root",
                        key_files=(str(path),), identities_only=True, default_keys=False,
                        cert_files=(str(elsewhere),))
    labels = [label for label, _kind in offered_as(endpoint)]
    assert labels[0].startswith(f"certificate {elsewhere} (id 'other'")
    assert labels[1:] == [f"key {path} (through ssh-agent)"]


def test_identity_agent_none_unset_absent_or_not_an_agent_means_no_agent(monkeypatch, agent,
                                                                          tmp_path):
    # the env's agent (the fake) is not asked when IdentityAgent names another or none
    agent.held = [FakeAgentKey(b"from-the-env")]
    monkeypatch.delenv("NO_SUCH_SOCK", raising=False)
    monkeypatch.setattr(paramiko_session, "_AGENT_TIMEOUT", 0.5)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)     # accepts, never answers
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(1)
    for setting in ("none", "$NO_SUCH_SOCK", "/nonexistent/agent.sock",
                    str(tmp_path / "silent.sock")):
        endpoint = Endpoint(name="n1", address="10.0.0.5", port=22, user="root",
                            identity_agent=setting)
        assert offers(endpoint) == ([], [], [])
    silent.close()
    assert [blob for _label, blob in offers(hop(identities_only=False))[0]] == [b"from-the-env"]


def test_a_key_accepted_as_one_step_of_two_goes_on_to_the_next_key(tmp_path):
    # sshd `AuthenticationMethods publickey,publickey`: ssh offers its next key; harden took
    # the first acceptance for a login, then failed to open a channel ("Timeout opening")
    first, second = plain_key_file(tmp_path / "id_a"), plain_key_file(tmp_path / "id_b")
    server = FakeTransport({first, second}, then=("publickey",))
    _authenticate("n1", hop(str(tmp_path / "id_a"), str(tmp_path / "id_b")), server)
    assert server.offered == [first, second] and server.authenticated


@pytest.mark.parametrize("then, advice", [
    ("publickey", "name another key it accepts"),
    ("keyboard-interactive", "cannot answer an interactive second factor"),
    ("password", "set ansible_password for the password step")])
def test_a_step_harden_cannot_take_is_named_not_a_channel_timeout(tmp_path, then, advice):
    key = plain_key_file(tmp_path / "id_a")
    with pytest.raises(AuthenticationFailed) as failed:
        _authenticate("n1", hop(str(tmp_path / "id_a")), FakeTransport({key}, then=(then,)))
    assert failed.value.setting == "AuthenticationMethods"
    assert f"accepted key {tmp_path / 'id_a'} as one step but requires more" in \
        failed.value.message
    assert f"it still asks for {then}" in failed.value.message and advice in failed.value.message


def test_a_password_accepted_as_the_first_step_goes_on_to_the_keys(tmp_path):
    # `AuthenticationMethods password,publickey`: the key is refused as a method first, the
    # password is one step, then the key logs in (harden said "refused (tried password)")
    key = plain_key_file(tmp_path / "id_a")
    server = FakeTransport({key}, then=("publickey",))
    server.password = "pw"
    first = [True]

    def publickey(_user, pkey):
        if first.pop() if first else False:
            raise paramiko.BadAuthenticationType("password first", ["password"])
        server.authenticated = True
        return []
    server.auth_publickey = publickey
    _authenticate("n1", hop(str(tmp_path / "id_a"), password="pw"), server)
    assert server.authenticated


def test_a_password_not_sent_is_not_reported_as_tried(tmp_path):
    key = plain_key_file(tmp_path / "id_a")
    with pytest.raises(AuthenticationFailed) as failed:
        _authenticate("n1", hop(str(tmp_path / "id_a"), password="pw"),
                      FakeTransport({key}, then=("publickey",)))
    assert "also tried" not in failed.value.message


def test_an_empty_answer_without_a_login_is_a_closed_connection(tmp_path):
    key = plain_key_file(tmp_path / "id_a")
    server = FakeTransport({key})
    server.auth_publickey = lambda _user, _key: []          # closed as it answered
    with pytest.raises(AuthenticationFailed, match="closed the connection during auth"):
        _authenticate("n1", hop(str(tmp_path / "id_a")), server)


def test_identity_agent_paths_expand_as_ssh_expands_them(monkeypatch, agent):
    from harden.ssh import sshconfig
    monkeypatch.setenv("AGENT_DIR", "/run/agents")
    monkeypatch.delenv("NO_SUCH_DIR", raising=False)
    home = sshconfig.passwd_home()
    assert paramiko_session._agent_path("${AGENT_DIR}/%u.sock") == \
        f"/run/agents/{sshconfig.local_user()}.sock"
    assert paramiko_session._agent_path("~/.1p/agent.sock") == f"{home}/.1p/agent.sock"
    assert paramiko_session._agent_path("%d/100%%/s") == f"{home}/100%/s"
    assert paramiko_session._agent_path("${NO_SUCH_DIR}/s") is None
    assert paramiko_session._agent_path("/run/%h.sock") is None


def test_a_jump_host_keeps_its_own_agent_not_the_targets(tmp_path):
    # ssh sets the target's IdentityAgent only for itself: a ProxyJump's ssh uses its own
    from harden.ssh.settings import RunOptions, connection_spec
    config = tmp_path / "ssh_config"
    config.write_text("Host node-*\n  IdentityAgent none\n")

    class Host:
        name, groups = "node-1", ["all"]
        vars = {"ansible_ssh_common_args": f"-F {config} -J bastion"}
    spec = connection_spec(Host(), RunOptions(local_user="alice"))
    assert spec.target.identity_agent == "none" and spec.jumps[0].identity_agent is None
