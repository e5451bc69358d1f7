"""The per-node agent: OVN in, kernel routes, neighbours, flows and FRR out."""
