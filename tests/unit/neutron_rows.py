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


# Networks shared by the planner tests: Neutron network id, its segment id (provider
# networks), and the SB Datapath_Binding UUID.
PUBLIC_NET, PUBLIC_SEG, PUBLIC_DP = (
    "3b0e6a1c-7f2d-4e8a-9b5c-1d2e3f4a5b60", "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7",
    "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e01")
FAR_NET, FAR_SEG, FAR_DP = (
    "6e3b9d4f-0c5a-4b1d-8e8f-4a5b6c7d8e90", "b4c5d6e7-f809-41a2-b3c4-d5e6f708192a",
    "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e04")
PRIVATE_NET, PRIVATE_DP = (
    "7f4cae50-1d6b-4c2e-9f90-5b6c7d8e9fa0", "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e05")


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


# --- routers, floating IPs, load balancers, virtual ports, live migration ----------------------
#
# Neutron releases differ in what they write (OVN_DATA.md); `neutron` is the release number:
# - `neutron:router_name` on router ports, NAT rows and port-forwarding LBs: the bare router
#   UUID up to 26, "neutron-<uuid>" from 27;
# - gateway scheduling: NB Gateway_Chassis up to 28, an NB HA_Chassis_Group from 29. northd
#   turns both into an SB HA_Chassis_Group referenced by the cr-lrp (named "lrp-<gw>" or
#   "neutron-<router>"); the SB `gateway_chassis` column stays empty;
# - the host of a virtual port: `neutron:host_id` up to 28, `neutron:parent_hostname` from 29.
# Rows below were checked against ovn-northd 23.03.1 fed as Neutron writes.

OLD_NEUTRON, NEW_NEUTRON = 26, 29
NEUTRON_RELEASES = (OLD_NEUTRON, 27, NEW_NEUTRON)


def router_ref(router_id: str, neutron: int) -> str:
    """How Neutron names a router in external_ids (`neutron:router_name`)."""
    return router_id if neutron <= 26 else f"neutron-{router_id}"


def nat_entry(mac: str, ips: list[str], resident: str) -> str:
    """One `nat_addresses` entry as northd writes it (the port is a quoted string)."""
    return f'{mac} {" ".join(ips)} is_chassis_resident("{resident}")'


def router_datapath_row(uuid: str, router_id: str, name: str, tunnel_key: int) -> Row:
    """Datapath_Binding of the logical router Neutron created for router `router_id` (northd
    copies the LR's `neutron:router_name`, the router's own name, into name2)."""
    return {
        "_uuid": uuid,
        "tunnel_key": tunnel_key,
        "external_ids": {"logical-router": f"{uuid[:-4]}ffff", "name": f"neutron-{router_id}",
                         "name2": name},
        "load_balancers": [],
    }


def _binding(logical_port: str, type_: str, datapath: str, tunnel_key: int, **columns: Any) -> Row:
    row: Row = {
        "logical_port": logical_port, "type": type_, "datapath": datapath,
        "tunnel_key": tunnel_key, "mac": [], "chassis": [], "up": [False], "options": {},
        "external_ids": {}, "requested_chassis": [], "additional_chassis": [],
        "requested_additional_chassis": [], "virtual_parent": [], "tag": [],
        "nat_addresses": [], "gateway_chassis": [], "ha_chassis_group": [], "encap": [],
        "additional_encap": [], "parent_port": [], "port_security": [], "mirror_rules": [],
    }
    row.update(columns)
    return row


def _router_port_ids(router_id: str, network_id: str, neutron: int, *, gateway: bool) -> Row:
    """A router port's external_ids (northd copies the LRP's into the SB binding)."""
    return {"neutron:is_ext_gw": str(gateway), "neutron:network_name": f"neutron-{network_id}",
            "neutron:router_name": router_ref(router_id, neutron),
            "neutron:subnet_ids": "d1e2f3a4-0000-4000-8000-00000000000a",
            "neutron:revision_number": "3"}


def redirect_row(gw_port: str, router_dp: str, router_id: str, network_id: str, mac: str, *,
                 chassis: str | None, neutron: int = NEW_NEUTRON,
                 distributed_nat: bool = False) -> Row:
    """The chassisredirect `cr-lrp-<gw>` of a router gateway: `mac` "MAC IP/len IP6/len",
    `chassis` the active gateway (None: no live gateway chassis). northd writes
    always-redirect only while the router has no distributed NAT."""
    options = {"distributed-port": f"lrp-{gw_port}"}
    if not distributed_nat:
        options["always-redirect"] = "true"
    group = "9d671882-c613-4876-91a3-14660b8e81" + ("41" if neutron <= 28 else "29")
    return _binding(
        f"cr-lrp-{gw_port}", "chassisredirect", router_dp, 2, mac=[mac],
        chassis=[] if chassis is None else [chassis], up=[chassis is not None],
        options=options, ha_chassis_group=[group],
        external_ids=_router_port_ids(router_id, network_id, neutron, gateway=True))


def router_port_row(lrp: str, router_dp: str, mac: str, *, peer: str, router_id: str,
                    network_id: str, neutron: int = NEW_NEUTRON, redirect: str | None = None,
                    tunnel_key: int = 3) -> Row:
    """The router-side patch binding `lrp-<port>` of a router port; `redirect` is the cr-lrp
    of a gateway port."""
    options = {"peer": peer}
    if redirect is not None:
        options["chassis-redirect-port"] = redirect
    return _binding(lrp, "patch", router_dp, tunnel_key, mac=[mac], options=options,
                    external_ids=_router_port_ids(router_id, network_id, neutron,
                                                  gateway=redirect is not None))


def _router_lsp_ids(router_id: str, network_id: str, owner: str, *, cidrs: str,
                    scope4: str = "", scope6: str = "") -> Row:
    return {"neutron:cidrs": cidrs, "neutron:device_id": router_id,
            "neutron:device_owner": owner, "neutron:mtu": "",
            "neutron:network_name": f"neutron-{network_id}", "neutron:port_capabilities": "",
            "neutron:port_name": "", "neutron:project_id": PROJECT,
            "neutron:revision_number": "5", "neutron:security_group_ids": "",
            "neutron:subnet_pool_addr_scope4": scope4,
            "neutron:subnet_pool_addr_scope6": scope6, "neutron:vnic_type": "normal"}


def gateway_lsp_row(port_id: str, provider_dp: str, gw_port: str, *, router_id: str,
                    network_id: str, nat_addresses: list[str], cidrs: str) -> Row:
    """The provider-side patch binding of a router gateway (LSP type=router,
    `nat-addresses=router`): northd keeps only `peer` in its options and fills
    `nat_addresses`."""
    return _binding(port_id, "patch", provider_dp, 3, mac=["router"],
                    options={"peer": f"lrp-{gw_port}"}, nat_addresses=nat_addresses,
                    external_ids=_router_lsp_ids(router_id, network_id,
                                                 "network:router_gateway", cidrs=cidrs))


def interface_lsp_row(port_id: str, tenant_dp: str, router_id: str, network_id: str,
                      cidrs: str, *, scope4: str = "", scope6: str = "") -> Row:
    """The switch-side patch binding of a router interface (LSP type=router), with Neutron's
    address-scope keys ("" when the subnet has none)."""
    return _binding(port_id, "patch", tenant_dp, 1, mac=["router"],
                    options={"peer": f"lrp-{port_id}"},
                    external_ids=_router_lsp_ids(router_id, network_id,
                                                 "network:router_interface", cidrs=cidrs,
                                                 scope4=scope4, scope6=scope6))


def virtual_port_row(port_id: str, datapath: str, network_id: str, virtual_ip: str,
                     parents: list[str], *, chassis: str | None, parent: str | None,
                     host: str = "compute-0", neutron: int = NEW_NEUTRON,
                     mac: list[str] | None = None) -> Row:
    """A Neutron VIP port (an allowed-address pair of `parents`) that Neutron made
    type=virtual. ovn-controller sets `chassis` and `virtual_parent` where a parent announced
    the VIP; Neutron then writes that parent's host (its key depends on the release)."""
    external_ids = {"name": "vip-port", "neutron:cidrs": f"{virtual_ip}/24",
                    "neutron:device_id": "", "neutron:device_owner": "",
                    "neutron:network_name": f"neutron-{network_id}",
                    "neutron:port_name": "vip-port", "neutron:project_id": PROJECT,
                    "neutron:revision_number": "2",
                    "neutron:security_group_ids": SECURITY_GROUP,
                    "neutron:subnet_pool_addr_scope4": "", "neutron:subnet_pool_addr_scope6": "",
                    "neutron:vnic_type": "normal"}
    if chassis is not None:
        external_ids["neutron:host_id" if neutron <= 28 else "neutron:parent_hostname"] = host
    return _binding(port_id, "virtual", datapath, 9, mac=mac or [],
                    chassis=[] if chassis is None else [chassis], up=[chassis is not None],
                    virtual_parent=[] if parent is None else [parent],
                    options={"virtual-ip": virtual_ip, "virtual-parents": ",".join(parents)},
                    external_ids=external_ids)


def migrating(row: Row, source: str, destination: str, *, activated: bool,
              strategy: str | None = "rarp") -> Row:
    """A VM port during a live migration from `source` to `destination` (Chassis.name);
    `activated`: the destination's ovn-controller has seen the VM's RARP."""
    options = {"requested-chassis": "compute-0,compute-1"}
    if strategy is not None:
        options["activation-strategy"] = strategy
    if activated:
        options["additional-chassis-activated"] = destination
    return {**row, "chassis": [source], "requested_chassis": [source],
            "additional_chassis": [destination], "requested_additional_chassis": [destination],
            "options": options}


def load_balancer_row(uuid: str, name: str, vips: dict[str, str], *, switches: list[str],
                      routers: list[str] | None = None, ovn: str = "23.03") -> Row:
    """An SB Load_Balancer as northd writes it: external_ids only lb_id. Its datapaths by OVN
    version (a group given as the datapaths of the Logical_DP_Group it references): 20.12
    `datapaths`; 22.09 `datapath_group` (switches only); 24.03 `ls_datapath_group` and
    `lr_datapath_group`."""
    row: Row = {"_uuid": uuid, "name": name, "vips": vips, "protocol": ["tcp"],
                "external_ids": {"lb_id": f"{uuid[:-4]}0b0b"},
                "options": {"hairpin_orig_tuple": "true"}}
    if ovn == "20.12":
        row["datapaths"] = switches
    elif ovn in ("22.09", "23.03"):
        row.update(datapaths=[], datapath_group=switches)
    else:
        row.update(ls_datapath_group=switches, lr_datapath_group=routers or [])
    return row


def port_forwarding_lb_row(uuid: str, fip_id: str, vips: dict[str, str], router_id: str, *,
                           neutron: int = NEW_NEUTRON) -> Row:
    """An NB Load_Balancer of Neutron port forwarding, applied to the router only (so absent
    from the SB before OVN 24.03), as a reader with an NB connection would pass it."""
    return {"_uuid": uuid, "name": f"pf-floatingip-{fip_id}-tcp", "vips": vips,
            "protocol": ["tcp"],
            "external_ids": {"neutron:device_owner": "port_forwarding_plugin",
                             "neutron:fip_id": fip_id,
                             "neutron:router_name": router_ref(router_id, neutron)}}


def two_chassis() -> list[Row]:
    """The Chassis rows of compute-0 (this node) and compute-1."""
    return [chassis_row(CHASSIS_0, "compute-0"), chassis_row(CHASSIS_1, "compute-1")]
