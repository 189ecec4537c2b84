"""Remote execution on hosts over SSH (paramiko) with verified host keys."""
