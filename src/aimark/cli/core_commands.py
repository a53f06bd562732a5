"""keygen, generate, detect, demo."""
