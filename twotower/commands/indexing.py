"""``twotower index``, ``twotower artifacts list|show|rollback`` and ``twotower query``.

Imports nothing heavy at module level (faiss/torch load inside the commands).
"""

from __future__ import annotations

import argparse
import json
import logging

from core.config import Config


def _quiet_faiss() -> None:
    # faiss logs every SIMD variant it tries at INFO; that is noise on a command's output.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def _fmt(metrics: dict) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) and not float(v).is_integer() else f"{k} {int(v)}"
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build the FAISS index for a day's candidate model and publish it (gated)")
    p.add_argument("--ds", required=True, help="run day YYYY-MM-DD (the candidate in Layout.model_dir(ds))")
    p.add_argument("--force", action="store_true", help="publish even if the quality gate refuses or an earlier day is unpublished (a gap)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=_index)

    a = sub.add_parser("artifacts", help="list, inspect and roll back published model versions")
    asub = a.add_subparsers(dest="artifacts_command", metavar="ACTION", required=True)
    al = asub.add_parser("list", help="published versions (and rejected candidates), oldest first")
    al.add_argument("--json", action="store_true")
    al.set_defaults(func=_list)
    ash = asub.add_parser("show", help="a version's manifest (checksums verified)")
    ash.add_argument("version", help="YYYY-MM-DD, or <ds>-<n> for a rejected candidate")
    ash.add_argument("--json", action="store_true")
    ash.set_defaults(func=_show)
    ar = asub.add_parser("rollback", help="point LATEST at VERSION after verifying its checksums")
    ar.add_argument("version")
    ar.set_defaults(func=_rollback)

    q = sub.add_parser("query", help="top-k items for a user from a published version")
    q.add_argument("--user-id", required=True)
    q.add_argument("-k", type=int, default=50)
    q.add_argument("--version", help="version to query (default: LATEST)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_query)


def _index(cfg: Config, args: argparse.Namespace) -> int:
    """The DAG's build_index and publish steps (``twotower.pipeline``): the same pulls, stage
    statistics and publish-gap rule (``--force`` passes both the gap and the quality gate)."""
    _quiet_faiss()
    from twotower import pipeline
    from twotower.cli import print_json

    pipeline.refuse_publish_gap(cfg, args.ds, force=args.force)  # before building anything
    built = pipeline.build_index(cfg, args.ds)
    published = pipeline.publish(cfg, args.ds, force=args.force)
    if args.json:
        print_json({"build_index": built.to_dict(), "publish": published.to_dict()})
    else:
        ann = built.ann
        print(
            f"built {built.index.factory} over {built.ntotal:,} x {built.dimension}: "
            f"ANN recall@{ann.k} {ann.recall:.4f}, {ann.qps_ann:,.0f} QPS (exact {ann.qps_exact:,.0f})"
        )
        print(f"published {published.version} at {published.path} ({published.reason})")
    return 0


def _list(cfg: Config, args: argparse.Namespace) -> int:
    _quiet_faiss()
    from twotower import operations
    from twotower.cli import print_json

    listed = operations.versions(cfg)
    rows = listed["versions"]
    if args.json:
        print_json({"latest": listed["latest"], "versions": rows})
        return 0
    if not rows:
        print(f"no versions under {listed['model_root']}")
        return 0
    print(f"{'':2}{'version':14}{'status':11}{'index':18}{'ntotal':>10}{'recall@50':>11}{'ann':>8}  created_at")
    for r in rows:
        rec = "-" if r["recall@50"] is None else f"{r['recall@50']:.4f}"
        name = r["version"] if r["status"] != "rejected" else r["path"].rsplit("/", 1)[-1]
        print(
            f"{'*' if r['latest'] else ' ':2}{name:14}{r['status']:11}{r['index']:18}{r['ntotal']:>10,}"
            f"{rec:>11}{r['ann_recall']:>8.4f}  {r['created_at']}"
        )
        if r["reason"] and r["status"] == "rejected":
            print(f"{'':4}reason: {r['reason']}")
    return 0


def _show(cfg: Config, args: argparse.Namespace) -> int:
    _quiet_faiss()
    from twotower import operations
    from twotower.cli import print_json

    loaded, latest = operations.show_version(cfg, args.version)
    m = loaded.manifest
    if args.json:
        print_json(dict(m, path=str(loaded.path), latest=latest))
        return 0
    model = (m.get("metrics") or {}).get("model") or {}
    print(f"version {m['version']} ({m['status']}) at {loaded.path}; checksums of {len(m['files'])} files verified")
    print(f"  ds {m['ds']}, window {m['data_window'].get('start')}..{m['data_window'].get('end')}, created {m['created_at']}")
    print(f"  code {m['code_version']}, config {m['config_hash'][:12]}")
    print(f"  index {m['index']['factory']} {json.dumps(m['index']['params'])}: {m['ntotal']:,} x {m['dimension']}")
    for note in m["index"].get("notes", []):
        print(f"    note: {note}")
    ann = m["ann"]
    print(f"  ANN recall@{ann['k']} {ann['recall']:.4f}; {ann['qps_ann']:,.0f} QPS vs exact {ann['qps_exact']:,.0f}")
    print("  model: " + _fmt(model))
    for name, vals in ((m.get("metrics") or {}).get("baselines") or {}).items():
        if isinstance(vals, dict):
            print(f"  {name}: " + _fmt(vals))
    if m.get("gate"):
        print(f"  gate: {'passed' if m['gate']['passed'] else 'REFUSED'}: {m['gate']['reason']}")
    return 0


def _rollback(cfg: Config, args: argparse.Namespace) -> int:
    _quiet_faiss()
    from twotower import operations

    res = operations.rollback(cfg, args.version)
    print(f"LATEST: {res['previous']} -> {res['latest']} (checksums verified)")
    return 0


def _query(cfg: Config, args: argparse.Namespace) -> int:
    _quiet_faiss()
    from core.errors import UserError
    from twotower import operations
    from twotower.cli import print_json

    if args.k < 1:
        raise UserError(f"-k must be >= 1, got {args.k}")
    res, version = operations.recommend(cfg, args.user_id, args.k, args.version)
    if args.json:
        print_json(dict(res, version=version.name))
        return 0
    if not res["known"]:
        print(
            f"user {args.user_id!r} is not among the {version.n_users:,} users of version "
            f"{version.name}: cold-start results (the model's out-of-vocabulary user)"
        )
    print(f"top {len(res['items'])} for user {args.user_id!r} from version {version.name}:")
    for it in res["items"]:
        print(f"{it['rank']:>4}  {it['item_id']:<24} {it['score']:.4f}")
    return 0
