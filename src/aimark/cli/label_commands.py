"""label, unlabel, verify."""
