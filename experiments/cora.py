"""Attention GCN on the Planetoid citation graphs (not implemented yet: issue 3)."""

import sys

if __name__ == "__main__":
    print("experiments/cora.py: the attention GCN is not implemented yet (issue 3); nothing was trained.",
          file=sys.stderr)
    sys.exit(2)
