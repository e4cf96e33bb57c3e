"""``python -m mhs.directory``: rewrite the packaged default topology from the generator."""

import sys
from pathlib import Path

from mhs.directory.generate import DEFAULT_TOPOLOGY_HEADER, default_topology, topology_yaml

target = Path(__file__).with_name("default-topology.yaml")
target.write_text(topology_yaml(default_topology(), DEFAULT_TOPOLOGY_HEADER))
sys.stdout.write(f"wrote {target}\n")
