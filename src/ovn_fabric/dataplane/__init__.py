"""Dataplane drivers: one per kind of state, each `read` -> pure `diff` -> `apply`.

Each driver owns only state carrying its marker (see ovn_fabric.model): kernel routes and
neighbours with protocol RTPROT_OVN_FABRIC, addresses with IFA_PROTO RTPROT_OVN_FABRIC, OpenFlow
rules whose cookie has FLOW_COOKIE in its high 32 bits.
"""
