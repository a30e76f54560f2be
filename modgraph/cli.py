"""The ``modgraph`` command: check and summarise spec files (and more subcommands as they land).

Exit codes: 0 success, 2 a user error (one line on stderr naming the fault).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import ModgraphError

EXAMPLES = """examples:
  modgraph check arch.yaml        validate a spec; exit 2 with the fault named
  modgraph summary arch.yaml      nodes, widths, parameters per node and edge
  modgraph draw arch.yaml -o arch.png   the DAG as a picture (attended edges solid)
"""


def _check(args) -> int:
    from .module_graph import ModuleGraph

    net = ModuleGraph.from_file(args.spec)
    print(f"{args.spec}: ok ({len(net.plan.steps)} nodes, {net.graph.number_of_edges()} edges, "
          f"{sum(p.numel() for p in net.parameters()):,} parameters)")
    return 0


def _summary(args) -> int:
    from .module_graph import ModuleGraph

    print(ModuleGraph.from_file(args.spec).summary())
    return 0


def _draw(args) -> int:
    from .module_graph import ModuleGraph
    from .plot import dag_figure, figure_format

    try:
        figure_format(args.output)  # before any work
    except ValueError as err:
        raise ModgraphError(str(err)) from None
    net = ModuleGraph.from_file(args.spec)
    try:
        path = dag_figure(net, None, args.output)
    except OSError as err:  # no such folder, permissions, a full disk: nothing is left behind (atomic write)
        raise ModgraphError(f"cannot write {args.output}: {err.strerror or err}") from None
    print(f"wrote {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Flag errors in one line (``modgraph: error: ...``, exit code 2), not the usage text."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="modgraph", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a spec file (YAML or JSON)")
    p.add_argument("spec")
    p.set_defaults(run=_check)
    p = sub.add_parser("summary", help="print nodes, widths and parameters of a spec file")
    p.add_argument("spec")
    p.set_defaults(run=_summary)
    p = sub.add_parser("draw", help="draw a spec file's DAG to a PNG")
    p.add_argument("spec")
    p.add_argument("-o", "--output", required=True, help="the PNG to write")
    p.set_defaults(run=_draw)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except ModgraphError as err:
        print(f"modgraph {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file that cannot be read or written
        print(f"modgraph {args.command}: error: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
