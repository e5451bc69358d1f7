"""OVN as the agent sees it: the frozen view of the Southbound rows (view.py); the OVSDB reader
that builds it lives beside it."""
