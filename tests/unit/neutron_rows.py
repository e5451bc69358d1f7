"""Southbound rows exactly as Neutron (ML2/OVN) and ovn-northd 23.03 write them
(/work/shared/OVN_DATA.md), in the form the OVSDB reader hands to the view builders: what the OVS
Python IDL gives for each column (lists for sets and optional columns, dicts for maps), with
references resolved to keys (Chassis.name, Datapath_Binding _uuid)."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]

# SB Chassis.name is the OVS system-id (a UUID); hostname is the host name.
CHASSIS_0 = "5a1f3c52-8f0e-4c1b-9a77-0d3e4b6c0a00"
CHASSIS_1 = "5a1f3c52-8f0e-4c1b-9a77-0d3e4b6c0a01"
PROJECT = "a3c5e0f2b1d44f6e8c9a0b1c2d3e4f50"
SECURITY_GROUP = "0b6a4d4e-6c1f-4f5a-9a1e-3c2b1a0f9e8d"


def chassis_row(name: str, hostname: str) -> Row:
    return {
        "name": name,
        "hostname": hostname,
        "encaps": [],
        "external_ids": {},
        "other_config": {"ovn-bridge-mappings": "datacentre:br-ex", "ovn-cms-options": ""},
        "nb_cfg": 0,
        "transport_zones": [],
        "vtep_logical_switches": [],
    }


def datapath_row(uuid: str, network_id: str, name: str, tunnel_key: int) -> Row:
    """Datapath_Binding of a logical switch Neutron created for network `network_id`."""
    return {
        "_uuid": uuid,
        "tunnel_key": tunnel_key,
        "external_ids": {"name": f"neutron-{network_id}", "name2": name},
        "load_balancers": [],
    }


def localnet_row(segment_id: str, datapath: str, physnet: str, tag: int | None = None) -> Row:
    """The localnet port of a flat (tag None) or VLAN provider network segment."""
    return {
        "logical_port": f"provnet-{segment_id}",
        "type": "localnet",
        "datapath": datapath,
        "tunnel_key": 1,
        "mac": ["unknown"],
        "chassis": [],
        "up": [],
        "tag": [] if tag is None else [tag],
        "options": {"network_name": physnet, "mcast_flood": "false",
                    "mcast_flood_reports": "true", "localnet_learn_fdb": "false"},
        "external_ids": {"neutron:provnet-physical-network": physnet},
        "requested_chassis": [],
        "additional_chassis": [],
        "requested_additional_chassis": [],
        "virtual_parent": [],
        "nat_addresses": [],
        "gateway_chassis": [],
        "ha_chassis_group": [],
        "encap": [],
        "parent_port": [],
    }


def vm_port_row(
    port_id: str,
    datapath: str,
    network_id: str,
    mac: list[str],
    *,
    chassis: str | None,
    host: str = "compute-0",
    up: bool = True,
    name: str = "vm1-port",
    cidrs: str = "",
) -> Row:
    """A VM port (NB type "") as northd copies it into the SB; `chassis` is where
    ovn-controller claimed it (None: unbound)."""
    external_ids = {
        "name": name,
        "neutron:cidrs": cidrs,
        "neutron:device_id": "7d3c1b2a-0f9e-4d8c-b7a6-958473625140",
        "neutron:device_owner": "compute:nova",
        "neutron:mtu": "",
        "neutron:network_name": f"neutron-{network_id}",
        "neutron:port_capabilities": "",
        "neutron:port_name": name,
        "neutron:project_id": PROJECT,
        "neutron:revision_number": "4",
        "neutron:security_group_ids": SECURITY_GROUP,
        "neutron:subnet_pool_addr_scope4": "",
        "neutron:subnet_pool_addr_scope6": "",
        "neutron:vnic_type": "normal",
    }
    if up:
        external_ids["neutron:host_id"] = host   # Neutron adds it only while the port is up
    return {
        "logical_port": port_id,
        "type": "",
        "datapath": datapath,
        "tunnel_key": 2,
        "mac": mac,
        "chassis": [] if chassis is None else [chassis],
        "up": [up],
        "requested_chassis": [] if chassis is None else [chassis],
        "options": {"requested-chassis": host},
        "external_ids": external_ids,
        "additional_chassis": [],
        "requested_additional_chassis": [],
        "virtual_parent": [],
        "tag": [],
        "nat_addresses": [],
        "gateway_chassis": [],
        "ha_chassis_group": [],
        "encap": [],
        "parent_port": [],
    }
