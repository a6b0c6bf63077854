"""What harden knows about a node, below every other part: where kubeadm-style nodes keep their
files, where harden keeps its own, and the markers its node-side scripts print."""
