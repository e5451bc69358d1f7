"""ovn-fabric: OVN workloads routed over a pure layer-3 BGP fabric."""
