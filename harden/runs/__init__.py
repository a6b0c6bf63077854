"""What outlives a run: the node and local journals and backup retention."""
