"""velero-irsa: IAM Roles for Service Accounts for Velero on Amazon EKS, as a Helm post-renderer."""

__version__ = "0.1.0"
