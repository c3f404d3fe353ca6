"""A self-hosted Assistants API over Azure Table Storage: everything but the Functions routing."""
