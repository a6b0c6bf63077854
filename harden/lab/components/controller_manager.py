"""Emulated kube-controller-manager: flag validation, files, /healthz (see delegated.py)."""

from __future__ import annotations

from harden.lab.components import delegated
from harden.lab.components.flags import Parsed, kinds_from_table

COMMAND = "kube-controller-manager"
FLAGS = kinds_from_table(delegated.DELEGATED_FLAGS + """
allocate-node-cidrs:b cidr-allocator-type cloud-config cloud-provider cluster-cidr cluster-name
configure-cloud-routes:b controller-start-interval:d controllers:l external-cloud-volume-plugin
min-resync-period:d node-monitor-period:d route-reconciliation-period:d
use-service-account-credentials:b concurrent-service-syncs:i attach-detach-reconcile-sync-period:d
disable-attach-detach-reconcile-sync:b disable-force-detach-on-timeout:b cluster-signing-cert-file
cluster-signing-key-file cluster-signing-duration:d cluster-signing-kube-apiserver-client-cert-file
cluster-signing-kube-apiserver-client-key-file cluster-signing-kubelet-client-cert-file
cluster-signing-kubelet-client-key-file cluster-signing-kubelet-serving-cert-file
cluster-signing-kubelet-serving-key-file cluster-signing-legacy-unknown-cert-file
cluster-signing-legacy-unknown-key-file concurrent-deployment-syncs:i concurrent-statefulset-syncs:i
concurrent-endpoint-syncs:i endpoint-updates-batch-period:d concurrent-service-endpoint-syncs:i
max-endpoints-per-slice:i endpointslice-updates-batch-period:d
mirroring-concurrent-service-endpoint-syncs:i mirroring-endpointslice-updates-batch-period:d
mirroring-max-endpoints-per-subset:i concurrent-ephemeralvolume-syncs:i concurrent-gc-syncs:i
enable-garbage-collector:b concurrent-horizontal-pod-autoscaler-syncs:i
horizontal-pod-autoscaler-cpu-initialization-period:d
horizontal-pod-autoscaler-downscale-stabilization:d
horizontal-pod-autoscaler-initial-readiness-delay:d horizontal-pod-autoscaler-sync-period:d
horizontal-pod-autoscaler-tolerance:f concurrent-job-syncs:i concurrent-cron-job-syncs:i
legacy-service-account-token-clean-up-period:d concurrent-namespace-syncs:i namespace-sync-period:d
node-cidr-mask-size:i node-cidr-mask-size-ipv4:i node-cidr-mask-size-ipv6:i
service-cluster-ip-range large-cluster-size-threshold:i node-eviction-rate:f
node-monitor-grace-period:d node-startup-grace-period:d secondary-node-eviction-rate:f
unhealthy-zone-threshold:f enable-dynamic-provisioning:b enable-hostpath-provisioner:b
flex-volume-plugin-dir pv-recycler-increment-timeout-nfs:i pv-recycler-minimum-timeout-hostpath:i
pv-recycler-minimum-timeout-nfs:i pv-recycler-pod-template-filepath-hostpath
pv-recycler-pod-template-filepath-nfs pv-recycler-timeout-increment-hostpath:i
pvclaimbinder-sync-period:d terminated-pod-gc-threshold:i concurrent-replicaset-syncs:i
concurrent-rc-syncs:i concurrent-resource-quota-syncs:i resource-quota-sync-period:d
concurrent-serviceaccount-token-syncs:i root-ca-file service-account-private-key-file
concurrent-ttl-after-finished-syncs:i concurrent-validating-admission-policy-status-syncs:i
concurrent-daemonset-syncs:i enable-leader-migration:b leader-migration-config
""")
FILE_FLAGS = ("root-ca-file", "service-account-private-key-file", "cluster-signing-cert-file",
              "cluster-signing-key-file", "leader-migration-config")


def validate(flags: Parsed) -> list[str]:
    errors = []
    if flags.has("cluster-signing-cert-file") != flags.has("cluster-signing-key-file"):
        errors.append("cannot specify --cluster-signing-cert-file without "
                      "--cluster-signing-key-file (and vice versa)")
    gates = flags.get("feature-gates") or {}
    if gates.get("RotateKubeletServerCertificate") not in (None, "true", "false", "True", "False"):
        errors.append("invalid value of RotateKubeletServerCertificate="
                      f"{gates['RotateKubeletServerCertificate']}, err: strconv.ParseBool: invalid syntax")
    return errors


def main(argv: list[str]) -> int:
    return delegated.start(COMMAND, FLAGS, argv, FILE_FLAGS, validate)
