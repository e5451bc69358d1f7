"""The lab: a layer-3 spine-and-leaf data centre with real FRR, OVS and OVN, built in network
namespaces on one machine from a topology file."""
