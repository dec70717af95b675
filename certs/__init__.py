"""Federation certificates, keys and the signed membership directory."""
