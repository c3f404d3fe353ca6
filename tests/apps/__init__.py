"""Function apps for the dev host's own tests, beside (never inside) function_app."""
