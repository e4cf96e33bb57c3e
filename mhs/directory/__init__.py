"""The directory (our SDS): topology model, loader and lookups. No transport imports."""

from mhs.directory.directory import Directory, Party
from mhs.directory.generate import generate_topology
from mhs.directory.loader import TopologyError, load_topology, parse_topology
from mhs.directory.model import Interaction, Mhs, Reliability, Topology

__all__ = [
    "Directory",
    "Interaction",
    "Mhs",
    "Party",
    "Reliability",
    "Topology",
    "TopologyError",
    "generate_topology",
    "load_topology",
    "parse_topology",
]
