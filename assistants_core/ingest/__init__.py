"""The ingestion pipeline, one stage a module: parse (bytes to text), chunk (text to token windows),
embed (chunks to vectors). Each stage imports its heavy library only when it runs."""
