"""The agent's FRR configuration: rendered (exposure.py), applied by dataplane/frr.py."""
