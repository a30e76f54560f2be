"""Data sets: Planetoid citation graphs, six UCI tables (plus any CSV), and synthetic SBM graphs.

Everything reads from a data root (``data_root=...``, else ``$MODGRAPH_DATA``, else ``./data``) that may be
read-only; see ``shared/data/README.md`` for the layout and provenance of the offline files.
"""

from modgraph.data.checksums import KNOWN_SHA256, file_sha256, verify_file
from modgraph.data.paths import resolve_data_root
from modgraph.data.planetoid import PLANETOID_NAMES, load_planetoid
from modgraph.data.synthetic import edge_homophily, sbm_graph
from modgraph.data.uci import UCI_NAMES, UCIDataset, load_csv, load_uci

__all__ = [
    "KNOWN_SHA256",
    "PLANETOID_NAMES",
    "UCI_NAMES",
    "UCIDataset",
    "edge_homophily",
    "file_sha256",
    "load_csv",
    "load_planetoid",
    "load_uci",
    "resolve_data_root",
    "sbm_graph",
    "verify_file",
]
