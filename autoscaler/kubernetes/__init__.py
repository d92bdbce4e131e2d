"""Kubernetes: the same policies drive KEDA (an external scaler, and the manifests for it)."""
