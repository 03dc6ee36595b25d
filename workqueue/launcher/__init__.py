"""The launcher: builds the consumers' Kubernetes Job and runs it on a cluster or locally."""
