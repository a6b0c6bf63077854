"""kubeadm's source of truth, modelled without kubeadm: the ClusterConfiguration stored in
`kube-system/kubeadm-config` (from which `kubeadm upgrade` regenerates the control-plane
manifests) and the KubeletConfiguration in `kube-system/kubelet-config`. Below `apply` (which
persists hardening there) and `cis` (which checks that manifests and configuration agree)."""
