"""The lab's certificate authority and certificates, laid out as kubeadm lays out /etc/kubernetes/pki.

Real X.509 material matters: the API-server emulation serves HTTPS with these files, and CIS checks
look at key/cert file modes. ECDSA P-256 keeps a whole lab's PKI under a few milliseconds per
certificate, where RSA-2048 generation would dominate `lab up`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
CA_VALIDITY = datetime.timedelta(days=3650)


@dataclass
class KeyPair:
    """A certificate with its key, both as PEM bytes ready to be written."""

    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)


def _key_usage(ca: bool) -> x509.KeyUsage:
    """kubeadm's key usage: signing and key encipherment, plus certificate signing for a CA."""
    return x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=ca,
                         content_commitment=False, data_encipherment=False,
                         key_agreement=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)


def new_ca(common_name: str) -> KeyPair:
    """A self-signed CA, like kubeadm's `kubernetes`, `etcd-ca` and `front-proxy-ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now()).not_valid_after(_now() + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert, key)


def issue(ca: KeyPair, common_name: str, *, organization: str | None = None,
          server: bool = False, client: bool = False,
          dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> KeyPair:
    """A leaf certificate signed by `ca`, with the usages and SANs kubeadm gives the same file."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(_name(common_name, organization))
               .issuer_name(ca.cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(_now()).not_valid_after(_now() + VALIDITY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(ca=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), cert, key)


def service_account_keys() -> tuple[bytes, bytes]:
    """sa.key / sa.pub: the token signing pair (a bare key pair, no certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return _key_pem(key), public


def ssh_keypair(comment: str) -> tuple[bytes, bytes]:
    """An ed25519 key pair in OpenSSH formats (private file, `.pub` line) for hosts and clients."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return private, public + f" {comment}\n".encode()


@dataclass
class ClusterPKI:
    """Everything shared by the lab's nodes: one cluster CA, one etcd CA, one front-proxy CA."""

    ca: KeyPair
    etcd_ca: KeyPair
    front_proxy_ca: KeyPair
    sa_key: bytes
    sa_pub: bytes


def new_cluster_pki() -> ClusterPKI:
    sa_key, sa_pub = service_account_keys()
    return ClusterPKI(new_ca("kubernetes"), new_ca("etcd-ca"), new_ca("front-proxy-ca"),
                      sa_key, sa_pub)


def control_plane_files(pki: ClusterPKI, node: str, address: str) -> dict[str, bytes]:
    """pki/ file name -> content for a control-plane node, with the node's address as IP SAN."""
    apiserver = issue(pki.ca, "kube-apiserver", server=True, ips=("10.96.0.1", address),
                      dns_names=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                 "kubernetes.default.svc.cluster.local", node))
    pairs = {
        "apiserver": apiserver,
        "apiserver-kubelet-client": issue(pki.ca, "kube-apiserver-kubelet-client",
                                          organization="kubeadm:cluster-admins", client=True),
        "apiserver-etcd-client": issue(pki.etcd_ca, "kube-apiserver-etcd-client", client=True),
        "front-proxy-client": issue(pki.front_proxy_ca, "front-proxy-client", client=True),
        "etcd/server": issue(pki.etcd_ca, node, server=True, client=True,
                             dns_names=("localhost", node), ips=(address, "127.0.0.1")),
        "etcd/peer": issue(pki.etcd_ca, node, server=True, client=True,
                           dns_names=("localhost", node), ips=(address, "127.0.0.1")),
        "etcd/healthcheck-client": issue(pki.etcd_ca, "kube-etcd-healthcheck-client",
                                         client=True),
        "ca": pki.ca, "front-proxy-ca": pki.front_proxy_ca, "etcd/ca": pki.etcd_ca,
    }
    files = {"sa.key": pki.sa_key, "sa.pub": pki.sa_pub}
    for stem, pair in pairs.items():
        files[f"{stem}.crt"] = pair.cert_pem
        files[f"{stem}.key"] = pair.key_pem
    return files
